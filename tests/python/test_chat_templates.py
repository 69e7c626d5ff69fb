"""strata's chat templates against Python's jinja2, byte for byte.

Every template in ../shared/data/templates is rendered for a fixed set of
conversations, with and without the generation prompt, twice: by jinja2 set
up the way Hugging Face's apply_chat_template sets it up (immutable sandbox,
trim_blocks, lstrip_blocks, loop controls, its tojson, raise_exception and
strftime_now), and by `strata chat-template`. The outputs must be identical;
a conversation a template rejects must be rejected by both, and when the
template raised the error itself strata must report the template's message.
"""

import datetime
import json
import os
import pathlib
import subprocess

import jinja2
import jinja2.ext
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

STRATA_BIN = os.environ.get("STRATA_BIN")
SHARED_DIR = pathlib.Path(os.environ.get("STRATA_SHARED_DIR", pathlib.Path(__file__).resolve().parents[3] / "shared"))
TEMPLATE_DIR = SHARED_DIR / "data" / "templates"
TEMPLATES = sorted(TEMPLATE_DIR.glob("*.jinja")) if TEMPLATE_DIR.is_dir() else []

BOS = "<s>"
EOS = "</s>"

pytestmark = pytest.mark.skipif(not STRATA_BIN, reason="STRATA_BIN is not set")


# ---------------------------------------------------------------- reference


class _Generation(jinja2.ext.Extension):
    """HF's {% generation %} tag: renders its body in place."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def _raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt):
    return datetime.datetime.now().strftime(fmt)


def reference_env():
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[_Generation, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


def reference_render(source, conv, add_generation_prompt):
    """Returns ("ok", text) or ("error", message, raised_by_template)."""
    try:
        template = reference_env().from_string(source)
        context = {
            "messages": conv["messages"],
            "tools": conv.get("tools"),
            "documents": None,
            "add_generation_prompt": add_generation_prompt,
            "bos_token": BOS,
            "eos_token": EOS,
        }
        context.update(conv.get("extra", {}))
        return ("ok", template.render(**context))
    except jinja2.exceptions.TemplateError as e:
        return ("error", str(e), type(e) is jinja2.exceptions.TemplateError)
    except Exception as e:  # TypeError, ValueError, ...: the template failed on this input
        return ("error", f"{type(e).__name__}: {e}", False)


def strata_render(tmp_path, template_path, conv, add_generation_prompt):
    doc = {"messages": conv["messages"]}
    if conv.get("tools") is not None:
        doc["tools"] = conv["tools"]
    doc.update(conv.get("extra", {}))
    conv_file = tmp_path / "conv.json"
    conv_file.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    cmd = [STRATA_BIN, "chat-template", "--template", str(template_path), "--messages", str(conv_file),
           "--bos", BOS, "--eos", EOS]
    if not add_generation_prompt:
        cmd.append("--no-generation-prompt")
    return subprocess.run(cmd, capture_output=True, timeout=60)


# ---------------------------------------------------------------- conversations

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city — temperature in °C",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. \"Zürich\""},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city"],
        },
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the web",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
        "return": {"type": "string"},
    },
}
TOOLS = [WEATHER_TOOL, SEARCH_TOOL]


def _call(call_id, name, arguments):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


CONVERSATIONS = {
    "system_user": {
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the capital of France?"},
        ]
    },
    "user_only": {"messages": [{"role": "user", "content": "Hi there"}]},
    "multi_turn": {
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "Name a prime."},
            {"role": "assistant", "content": "7"},
            {"role": "user", "content": "  Another one, please.  \n"},
        ]
    },
    "multi_turn_no_system": {
        "messages": [
            {"role": "user", "content": "One"},
            {"role": "assistant", "content": "Two"},
            {"role": "user", "content": "Three"},
            {"role": "assistant", "content": "Four"},
            {"role": "user", "content": "Five"},
        ]
    },
    "tool_calls": {
        "tools": TOOLS,
        "messages": [
            {"role": "system", "content": "You can call tools."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None,
             "tool_calls": [_call("call00001", "get_weather", {"city": "Paris", "unit": "celsius"})]},
            {"role": "tool", "tool_call_id": "call00001", "name": "get_weather", "content": "{\"temp\": 21}"},
            {"role": "assistant", "content": "It is 21 °C in Paris."},
            {"role": "user", "content": "Thanks!"},
        ],
    },
    "tool_calls_text": {
        "tools": TOOLS,
        "messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": "",
             "tool_calls": [_call("call00002", "get_weather", {"city": "Oslo", "days": 2})]},
            {"role": "tool", "tool_call_id": "call00002", "content": "cold"},
        ],
    },
    "parallel_tool_calls": {
        "tools": TOOLS,
        "messages": [
            {"role": "user", "content": "Weather in Rome and news about it?"},
            {"role": "assistant", "content": "Let me check.",
             "tool_calls": [_call("call00003", "get_weather", {"city": "Rome"}),
                            _call("call00004", "search", {"query": "Rome news"})]},
            {"role": "tool", "tool_call_id": "call00003", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call00004", "content": "nothing new"},
        ],
    },
    "tool_arguments_string": {
        "tools": TOOLS,
        "messages": [
            {"role": "user", "content": "Search for cats"},
            {"role": "assistant", "content": None,
             "tool_calls": [_call("call00005", "search", "{\"query\": \"cats\"}")]},
            {"role": "tool", "tool_call_id": "call00005", "content": "many cats"},
            {"role": "assistant", "content": "Found many cats."},
        ],
    },
    "tool_result_object": {
        "tools": [WEATHER_TOOL],
        "messages": [
            {"role": "user", "content": "Weather in Lima?"},
            {"role": "assistant", "content": None,
             "tool_calls": [_call("call00006", "get_weather", {"city": "Lima"})]},
            {"role": "tool", "tool_call_id": "call00006", "content": {"temp": 18.5, "sky": "clear", "rain": None}},
        ],
    },
    "tools_no_calls": {
        "tools": TOOLS,
        "messages": [
            {"role": "system", "content": "Use tools when needed."},
            {"role": "user", "content": "Hello"},
        ],
    },
    "reasoning_content": {
        "messages": [
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "reasoning_content": "Add two and two.\n", "content": "4"},
            {"role": "user", "content": "And 3+3?"},
        ]
    },
    "reasoning_last_turn": {
        "messages": [
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "reasoning_content": "Simple sum.", "content": "4"},
        ]
    },
    "think_in_content": {
        "messages": [
            {"role": "user", "content": "Why is the sky blue?"},
            {"role": "assistant", "content": "<think>\nRayleigh scattering.\n</think>\n\nBecause of scattering."},
            {"role": "user", "content": "Short answer?"},
        ]
    },
    "thinking_disabled": {
        "extra": {"enable_thinking": False},
        "messages": [{"role": "user", "content": "Quick question"}],
    },
    "thinking_enabled": {
        "extra": {"enable_thinking": True},
        "messages": [{"role": "user", "content": "Hard question"}],
    },
    "unicode_and_escapes": {
        "tools": [WEATHER_TOOL],
        "messages": [
            {"role": "system", "content": "Réponds en français. 日本語も OK 👍"},
            {"role": "user", "content": "Quotes ' \" and \\backslash\\, tabs\tand {{ braces }} {% tags %}\r\n"},
        ],
    },
    "not_alternating": {
        "messages": [{"role": "user", "content": "first"}, {"role": "user", "content": "second"}]
    },
    "empty": {"messages": []},
}


# ---------------------------------------------------------------- tests


def _cases():
    for template in TEMPLATES:
        for conv_name in CONVERSATIONS:
            for agp in (True, False):
                yield pytest.param(template, conv_name, agp, id=f"{template.stem}-{conv_name}-{'gen' if agp else 'nogen'}")


def test_templates_present():
    assert TEMPLATES, f"no templates in {TEMPLATE_DIR}"


@pytest.mark.parametrize("template,conv_name,agp", list(_cases()))
def test_matches_jinja2(tmp_path, template, conv_name, agp):
    conv = CONVERSATIONS[conv_name]
    # Newlines exactly as stored: jinja2 normalizes them itself.
    source = template.read_bytes().decode("utf-8")
    expected = reference_render(source, conv, agp)
    got = strata_render(tmp_path, template, conv, agp)
    stderr = got.stderr.decode("utf-8", "replace")
    if expected[0] == "ok":
        assert got.returncode == 0, f"jinja2 rendered, strata failed: {stderr}"
        assert got.stdout.decode("utf-8") == expected[1]
    else:
        assert got.returncode == 1, f"jinja2 failed ({expected[1]}), strata rendered: {got.stdout!r}"
        assert stderr.startswith("strata: error: "), stderr
        assert stderr.count("\n") == 1, "errors are one line"
        if expected[2]:  # raise_exception(): the template's own message
            assert expected[1] in stderr



# ---------------------------------------------------------------- language features

# Small templates that pin down one behaviour each, rendered with SNIPPET_VARS
# by both engines. Errors must be errors in both.
SNIPPET_VARS = {
    "xs": [1, 2, 3], "d": {"a": 1, "b": None}, "n": None, "s": "héllo", "f": 2.5,
    "nested": {"k": [{"a": {"b": "deep"}}]}, "words": ["b", "A", "a", "c"],
    "objs": [{"name": "x", "v": 2}, {"name": "y", "v": 1}, {"v": 3}],
}
SNIPPETS = [
    # scoping
    "{% for i in [1,2] %}{% if i == 1 %}{% set x = 'a' %}{% endif %}[{{ x }}]{% endfor %}",
    "{% set x = 'o' %}{% for i in [1,2] %}[{{ x }}]{% set x = i %}[{{ x }}]{% endfor %}{{ x }}",
    "{% set x = 1 %}{% if true %}{% set x = 2 %}{% endif %}{{ x }}",
    "{% for i in [1,2] %}{% endfor %}{{ i }}",
    "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a }}",
    "{% set a, b = [1, 2] %}{{ a }}{{ b }}{% set x %}blk{{ a }}{% endset %}[{{ x }}]",
    "{% set x | upper %}shout{% endset %}{{ x }}",
    "{% set ns = namespace(a=1) %}{{ ns }}|{{ ns.b }}|{% set ns.b = 2 %}{{ ns.b }}",
    "{% set d2 = {'a': 1} %}{% set d2.b = 2 %}",
    # macros and call blocks
    "{% set x = 1 %}{% macro m() %}{{ x }}{% endmacro %}{% set x = 2 %}{{ m() }}",
    "{% macro m() %}{{ i }}{% endmacro %}{% for i in [1] %}{{ m() }}{% endfor %}",
    "{% macro m(a, b=2) %}{{ a }}{{ b }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1) }}|{{ m(1,3,4) }}|{{ m(1, c=5) }}",
    "{% macro m(a) %}{{ a }}{% endmacro %}{{ m() }}",
    "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}",
    "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(b=1) }}",
    "{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(5) }}",
    "{% macro m() %}{{ caller() }}!{% endmacro %}{% call m() %}inside{% endcall %}",
    "{% macro m() %}{{ caller(1) }}!{% endmacro %}{% call(v) m() %}in{{ v }}{% endcall %}",
    "{% filter upper %}abc{{ s }}{% endfilter %}",
    "{% generation %}gen{% endgeneration %}",
    "{% print 'hello', 1 %}",
    # loops
    "{% for x in xs %}{{ loop.previtem }}-{{ loop.nextitem }}-{{ loop.revindex }}-{{ loop.revindex0 }}-{{ loop.length }}-{{ loop.cycle('a','b') }}-{{ loop.depth }}-{{ loop.first }}{{ loop.last }};{% endfor %}",
    "{% for x in xs if x > 1 %}{{ loop.index }}/{{ loop.length }}{{ loop.last }};{% else %}none{% endfor %}",
    "{% for x in [] %}a{% else %}empty{% endfor %}",
    "{% for i in xs %}{% if i == 2 %}{% continue %}{% endif %}{{ i }}{% if i == 3 %}{% break %}{% endif %}{% endfor %}",
    "{% break %}",
    "{% for a, b in [[1,2],[3]] %}{{ a }}{{ b }}{% endfor %}",
    "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}",
    "{% for a in none %}{{ a }}{% endfor %}",
    "{% for x in {'b': 1, 'a': 2} %}{{ x }}{% endfor %}{% for x in 'ab' %}{{ loop.index }}{{ x }}{% endfor %}",
    # whitespace control
    "  {% if true %}\n  x\n  {% endif %}\n  y",
    "text  {% if true %}x{% endif %}\n  {{ 'v' }}\n\t{% if true %}t{% endif %}\n",
    "  {%- if true %}a{% endif -%}  \n  b  {#- c #}\n  {# d -#}  \ne",
    "{% for m in ['a', 'b'] %}\n    {{ m }}\n{% endfor %}\n",
    "\u00a0 {% if true %}nbsp{% endif %}\u3000{% if true %}ideo{% endif %}",
    "{{ {'a': {'b': 1}} }}{{ '}}' }}{% if '%}' %}ok{% endif %}",
    "a {#- c -#} b {# c #}\n  {# d #}\nz",
    "{% raw %}{{ x }}{% endraw %}",
    "  {% raw %}\n  {{ x }}\n  {% endraw %}\nafter",
    "{%- set x = 5 -%}\n  [{{ x }}]\n{%+ if true %}  y{% endif +%}\nz",
    "  {{- 'a' }}  {{ 'b' -}}  \nc",
    "line\r\nwith\rcarriage {{ 'x' }}\r\n",
    "{% if true %}a{% elif false %}b{% else %}c{% endif %}{% if false %}a{% elif true %}b{% else %}c{% endif %}",
    # undefined
    "{{ n.foo }}|{{ n['x'] }}|{{ d.c }}|{{ s.foo }}",
    "{{ d.c.e }}",
    "{{ u.x }}",
    "{{ 'a' in u }}",
    "{{ u < 1 }}",
    "{{ u == u }}{{ u is iterable }}{{ u|length }}{{ u|list }}",
    "{{ u + 'a' }}",
    "{{ u ~ 'a' }}",
    "{{ u() }}",
    "{{ u.x() }}",
    "{{ d.c is defined }}{{ d.b is none }}{{ d.b.c is defined }}",
    "{{ 'x' if false }}|{{ 'abc'[5] }}|{{ xs[5] }}|{{ xs[1.0] }}|{{ xs['a'] }}",
    "{{ 'abc'.missing() }}",
    # operators and literals
    "{{ -1|abs }} {{ 2 ~ 3 * 2 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }}",
    "{{ 1 + 2 ~ 3 }}",
    "{{ 1.0 }} {{ 1e20 }} {{ 1e-5 }} {{ 0.1+0.2 }} {{ 10/4 }} {{ 7//2 }} {{ -7 % 3 }} {{ [1,'a',none,true,1.5,{'k':'v'}] }}",
    "{{ 5 / 2 }} {{ -5 // 2 }} {{ -5 % 3 }} {{ 5.5 % 2 }} {{ 2 ** 0.5 }} {{ -5.5 // 2 }} {{ 5 % -3 }}",
    "{{ 10 // 0 }}",
    "{{ 'a' + 1 }}",
    "{{ none + 'a' }}",
    "{{ [1] + [2] }}{{ 'ab' * 2 }}{{ xs * 2 }}{{ 'a' * -1 }}{{ 3 * 'x' }}",
    "{{ [1,2] == (1,2) }} {{ {'a':1,'b':2} == {'b':2,'a':1} }} {{ 1 == true }} {{ 1 == 1.0 }}",
    "{{ 1 if 0 else 2 }}{{ 'a' and 'b' }}{{ '' or 'c' }}{{ 0 and 1 }}{{ 1 if true else 2 if false else 3 }}",
    "{{ not true }}{{ not not 1 }}{{ -xs[0] }}{{ +f }}",
    "{{ [1,2] < [1,3] }}{{ 'a' < 'b' }}{{ 1 < 2 < 3 }}{{ 3 > 2 > 2 }}",
    "{{ 1 < 'a' }}",
    "{{ 'ab' in 'cabd' }}{{ 1 in xs }}{{ 'a' in d }}{{ 'a' not in d }}",
    "{{ 1 in 'abc' }}",
    "{{ 'a' ~ 1.0 ~ none ~ true }}",
    "{{ {1: 'a', true: 'b'} }}",
    "{{ (1,2) }}{{ (1,) }}{{ () }}",
    "{{ 'a' 'b' }}",
    "{{ 0x1F }} {{ 1_000 }} {{ 1.5e3 }} {{ 0b101 }} {{ 0o17 }}",
    "{{ 007 }}",
    r"""{{ "\x41\u00e9\n\t\\\'\q\101" }}""",
    "{{ \"it's\" }}{{ [\"it's\", 'a\"b', 'x\\ny', \"both'\\\"\"] }}",
    "{{ 'x' is defined is defined }}",
    "{{ xs() }}",
    # subscripts and slices
    "{{ xs[-1] }}|{{ s[1:3] }}|{{ s[::-1] }}|{{ xs[1:] }}|{{ xs[::2] }}|{{ xs[::-1] }}|{{ xs[-2:] }}|{{ xs[:-5] }}",
    "{{ 'ab'[-1] }}{{ 'ab'[-3] }}{{ 'abcdef'[1:-1:2] }}{{ 'héllo'[1] }}",
    "{{ 'abc'[1:2:0] }}",
    "{{ d['a'] }}{{ d.a }}{{ {'items': 3}['items'] }}",
    "{{ nested.k[0].a.b }}{{ nested['k'][0]['a']['b'] }}{{ nested.k.0.a.b }}",
    # sandbox
    "{{ xs.append(4) }}",
    "{{ d.pop }}|",
    "{{ d.pop() }}",
    "{{ range(100001)|length }}",
    # filters
    "{{ d|tojson }} {{ d|tojson(indent=2) }} {{ 'é\\u0001'|tojson }} {{ 'é'|tojson(true) }} {{ xs|tojson(separators=(',',':')) }} {{ {'b':1,'a':2}|tojson(sort_keys=true) }}",
    "{{ xs|list|tojson(indent=0) }}{{ {}|tojson(indent=2) }}{{ []|tojson }}{{ [[]]|tojson(indent=1) }}{{ (1, 2)|tojson }}",
    "{{ 1.0|tojson }}{{ 1e100|tojson }}{{ 0.000001|tojson }}{{ -0.0 }}{{ 123456789012345678.0 }}{{ 1e16 }}{{ 1e15 }}",
    "{{ '\\u2028 \\x7f \\xa0 \\u200b'|tojson }}{{ ['\\u2028 \\x7f \\xa0 \\x01'] }}",
    "{{ u|tojson }}",
    "{{ s.upper() }} {{ s|upper }} {{ 'aßb'.upper() }} {{ 'ÉCOLE'.lower() }} {{ \"they're bill's\"|title }} {{ \"they're bill's\".title() }}",
    "{{ xs|map('string')|join(',') }} {{ [3,1,2]|sort }} {{ xs|first }} {{ xs|last }}",
    "{{ xs|length }}{{ s|length }}{{ d|length }}{{ xs|count }}{{ 3.7|int }}{{ '42'|int }}{{ 'x'|int }}{{ '3.5'|float }}{{ -3|abs }}",
    "{{ 2.5|round }}{{ 3.14159|round(2) }}{{ 5|round }}{{ 2.675|round(2) }}{{ 3.7|round(method='floor') }}{{ 3.2|round(method='ceil') }}",
    "{{ range(3)|list }}{{ range(1,5,2)|list }}{{ [3,1,2]|sort(reverse=true) }}{{ words|sort }}{{ words|sort(case_sensitive=true) }}",
    "{{ [1,2,2]|unique|list }}{{ xs|sum }}{{ xs|max }}{{ xs|min }}{{ words|max }}{{ []|max }}",
    "{{ xs|reverse|list }}{{ 'abc'|reverse }}{{ d|dictsort }}{{ d|dictsort(by='value', reverse=true) if false }}",
    "{{ 'a\\nb'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\n\\nb\\n'|indent }}|{{ 'a\\n\\nb'|indent(blank=true) }}",
    "{{ xs|join }}{{ [1,'a']|join('-') }}{{ 'abc'|list }}{{ 'Hello'|lower }}{{ 'a-b'|replace('-', '+') }}{{ 'aaa'|replace('a','b',2) }}",
    "{{ none|default('x') }}{{ u|default('x') }}{{ ''|default('x', true) }}{{ u|d('y') }}",
    "{{ '  a\\tb \\n'|trim }}|{{ 'xxaxx'|trim('x') }}|{{ u|trim }}|{{ none|string }}|{{ xs|string }}",
    "{{ objs|map(attribute='name')|list }} {{ objs|selectattr('name')|list }} {{ objs|selectattr('name','defined')|map(attribute='v')|list }} {{ objs|rejectattr('name')|list }}",
    "{{ objs|map(attribute='name', default='?')|join(',') }} {{ objs|sort(attribute='v')|map(attribute='v')|list }} {{ objs|sum(attribute='v') }}",
    "{{ xs|select('odd')|list }}{{ xs|reject('odd')|list }}{{ xs|select|list }}{{ xs|select('gt', 1)|list }}{{ xs|map('int')|list }}",
    "{{ xs|select('odd') is iterable }}{{ (xs|select('odd'))|length }}",
    "{{ xs|map('string')|tojson }}",
    "{% set g = xs|select('odd') %}{{ g|list }}{{ g|list }}{{ g|first }}",
    "{% set g = xs|select %}{{ g|first }}{{ g|first }}{{ g|list }}{{ 3 in g }}",
    "{% if []|select %}T{% else %}F{% endif %}{% if d.keys() %}T{% endif %}",
    "{{ d.keys()|list }}{{ d.items()|list }}{{ 'a' in d.keys() }}{{ d.keys()|length }}{{ d.values()|list }}",
    "{{ d.items()|tojson }}",
    "{{ xs|batch(2)|list }}{{ xs|batch(2, 0)|list }}",
    "{{ 'Hello World foo'|truncate(9) }}|{{ 'Hello World foo'|truncate(9, true) }}|{{ 'Hello'|truncate(3, leeway=0) }}|{{ 'hi there you'|wordcount }}",
    "{{ 'abc'|center(9) }}|{{ '%s'|format([1]) }}|{{ \"<a href='x'>&</a>\"|e }}|{{ 'x'|safe }}",
    "{{ '%s-%d'|format('a', 3) }} {{ '%05.1f|%-4s|%x|%+d|%5.2e'|format(3.14159, 'ab', 255, 4, 12345.678) }}",
    "{{ '%(a)s and %(b)d'|format(a='x', b=2) }}{{ '%s %s' % ('a', 'b') }}{{ '%d%%' % 5 }}{{ '%s' % none }}",
    "{{ '%d' % 'x' }}",
    "{{ '%s %s' % ('a',) }}",
    "{{ xs|attr('count') is callable }}{{ d|attr('a') }}",
    "{{ messages[0].role }}{{ messages[-1]['content']|upper }}",
    "{{ xs|map('string')|map('upper')|list }}{{ ['a', 'b']|map('replace', 'a', 'z')|list }}",
    "{{ xs|nosuchfilter }}",
    "{{ xs is nosuchtest }}",
    "{% if false %}{{ xs|nosuchfilter }}{% endif %}ok",
    "{{ xs|nosuchfilter if false else 'ok' }}",
    "{% if false %}{% for x in xs %}{{ x|nosuchfilter }}{% endfor %}{% endif %}",
    "{% if true %}{{ xs|nosuchfilter }}{% endif %}",
    "{% macro m() %}{{ 1 is nosuchtest }}{% endmacro %}ok",
    # tests
    "{{ 5 is divisibleby 5 }}{{ 'a' is string }}{{ {} is mapping }}{{ xs is sequence }}{{ 3 is number }}{{ true is number }}{{ true is integer }}",
    "{{ 'a' is lower }}{{ 1 is odd }}{{ 2 is even }}{{ none is none }}{{ xs is iterable }}{{ 1 is iterable }}{{ 'x' is iterable }}{{ d is callable }}{{ d.get is callable }}",
    "{{ 1 is eq 1 }}{{ 1 is ne 2 }}{{ 1 is lt 2 }}{{ 1 is sameas 1 }}{{ true is sameas true }}{{ 1 is in [1] }}{{ true is true }}{{ false is false }}{{ 1 is true }}",
    "{{ xs|first is defined }}{{ []|first is defined }}{{ []|last }}{{ 'upper' is filter }}{{ 'odd' is test }}",
    "{{ 1 is float }}{{ 1.0 is float }}{{ none is boolean }}{{ false is boolean }}{{ u is undefined }}{{ 2 is ge 2 }}{{ 2 is gt 2 }}{{ 'a' is upper }}",
    # str, dict and list methods
    "{{ 'a b  c'.split() }}{{ 'a,b'.split(',') }}{{ ' x '.strip() }}{{ 'abc'.startswith(('x','a')) }}{{ 'a b c'.split(None, 1) }}{{ 'a b c'.rsplit(' ', 1) }}",
    "{{ 'x,y,,z'.split(',') }}{{ 'a\\nb\\r\\nc'.splitlines() }}{{ '  lead'.lstrip() }}{{ 'trail  '.rstrip() }}{{ 'xxhixx'.strip('x') }}",
    "{{ 'hello'.find('l') }}{{ 'hello'.rfind('l') }}{{ 'hello'.count('l') }}{{ 'hello'.replace('l', 'L') }}{{ 'Hello'.swapcase() }}{{ 'hello'.capitalize() }}{{ 'ab'.zfill(5) }}{{ '-3'.zfill(4) }}",
    "{{ ', '.join(['a', 'b']) }}{{ 'a'.join('xyz') }}{{ 'hello'.endswith('lo') }}{{ 'hello'.startswith('he', 1) }}{{ 'x=1'.partition('=') }}",
    "{{ 'abc'.isalpha() }}{{ '123'.isdigit() }}{{ 'Ab'.isupper() }}{{ 'ab'.islower() }}{{ ' '.isspace() }}{{ 'Hello World'.istitle() }}",
    "{{ '{:>5}|{:<5}|{:^5}|{:05d}|{:.2f}|{!r}|{a}'.format('x', 'y', 'z', 42, 3.14159, 'q', a=1) }}",
    "{{ 'a{{b}}c'.format() }}{{ '{0}{1}{0}'.format('x', 'y') }}{{ '{:,}'.format(1234567) }}",
    "{{ d.get('a') }}{{ d.get('z', 5) }}{{ d.get('b') }}",
    "{{ xs.index(2) }}{{ xs.count(1) }}{{ (1,2,1).count(1) }}",
    "{{ xs.index(9) }}",
    # globals
    "{{ dict(a=1, b=2) }}{{ dict([('x', 1)]) }}{{ namespace(d).a }}",
    "{% set j = joiner('|') %}{% for x in xs %}{{ j() }}{{ x }}{% endfor %}",
    "{{ raise_exception('custom failure') }}",
    "{{ range(5, 0, -2)|list }}{{ range(0) }}",
    # syntax errors
    "{% if %}",
    "{% for x in xs %}",
    "{{ xs[ }}",
    "{% endfor %}",
    "{% include 'other.jinja' %}",
    "{{ 'unterminated }}",
    "{# open comment",
]


def _snippet_ids():
    return [pytest.param(i, src, id=f"snippet{i:03d}") for i, src in enumerate(SNIPPETS)]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # jinja2 on the unknown escape "\\q"
@pytest.mark.parametrize("index,source", _snippet_ids())
def test_snippet_matches_jinja2(tmp_path, index, source):
    template = tmp_path / "t.jinja"
    template.write_bytes(source.encode("utf-8"))
    conv = {"messages": [{"role": "user", "content": "hi"}], "extra": SNIPPET_VARS}
    expected = reference_render(source, conv, True)
    got = strata_render(tmp_path, template, conv, True)
    stderr = got.stderr.decode("utf-8", "replace")
    if expected[0] == "ok":
        assert got.returncode == 0, f"jinja2 gave {expected[1]!r}, strata failed: {stderr}"
        assert got.stdout.decode("utf-8") == expected[1]
    else:
        assert got.returncode == 1, f"jinja2 failed ({expected[1]}), strata rendered: {got.stdout!r}"
        assert stderr.startswith("strata: error: template") or stderr.startswith("strata: error: expected"), stderr


def test_model_template_and_tokens(tmp_path):
    """-m reads tokenizer.chat_template (or a variant) and the BOS/EOS texts."""
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "vocab.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_token_list(["<unk>", "<|begin|>", "<|end|>", "a"])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_chat_template("{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{{ eos_token }}")
    writer.add_string("tokenizer.chat_template.tool_use", "tools={{ tools | length }}")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    conv = tmp_path / "conv.json"
    conv.write_text(json.dumps([{"role": "user", "content": "hi"}]))
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps(TOOLS))

    out = subprocess.run([STRATA_BIN, "chat-template", "-m", str(path), "--messages", str(conv)], capture_output=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "<|begin|>[user]hi<|end|>".encode()

    out = subprocess.run([STRATA_BIN, "chat-template", "-m", str(path), "--messages", str(conv), "--variant",
                          "tool_use", "--tools", str(tools)], capture_output=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"tools=2"

    out = subprocess.run([STRATA_BIN, "chat-template", "-m", str(path), "--messages", str(conv), "--variant",
                          "rag"], capture_output=True)
    assert out.returncode == 1
    assert b"tool_use" in out.stderr


def test_missing_template_falls_back_to_chatml(tmp_path):
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "plain.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_token_list(["<unk>", "<s>", "</s>"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    conv = tmp_path / "conv.json"
    conv.write_text(json.dumps([{"role": "developer", "content": "Be terse."}, {"role": "user", "content": "hi"}]))
    out = subprocess.run([STRATA_BIN, "chat-template", "-m", str(path), "--messages", str(conv)], capture_output=True)
    assert out.returncode == 0, out.stderr
    assert b"warning" in out.stderr and b"ChatML" in out.stderr
    assert out.stdout == (b"<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
                          b"<|im_start|>assistant\n")
