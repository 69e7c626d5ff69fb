// The template engine on its own: every filter and test, undefined values,
// error positions, and the limits that keep hostile templates from crashing
// or exhausting the process. Byte-exactness against Python's jinja2 on real
// templates is checked in python/test_chat_templates.py.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "runtime/chat/chat_template.h"
#include "runtime/chat/jinja.h"

namespace strata::chat {
namespace {

using json = nlohmann::ordered_json;

json default_vars() {
  return json::parse(R"({"xs": [1, 2, 3], "d": {"a": 1, "b": null}, "s": "h\u00e9llo", "n": null,
                        "objs": [{"name": "x", "v": 2}, {"name": "y", "v": 1}, {"v": 3}]})");
}

Result<std::string> render(const std::string& src, const json& vars = default_vars(),
                           const jinja::RenderOptions& opts = {}) {
  STRATA_ASSIGN_OR_RETURN(auto t, jinja::Template::parse(src));
  return t.render_json(vars, opts);
}

std::string ok(const std::string& src, const json& vars = default_vars()) {
  auto r = render(src, vars);
  EXPECT_TRUE(r.is_ok()) << src << " -> " << r.status().message();
  return r.is_ok() ? *r : "<error>";
}

std::string err(const std::string& src, const jinja::RenderOptions& opts = {}) {
  auto r = render(src, default_vars(), opts);
  EXPECT_FALSE(r.is_ok()) << src << " rendered " << (r.is_ok() ? *r : "");
  return r.is_ok() ? "" : r.status().message();
}

// ---------------------------------------------------------------- syntax

TEST(ChatTemplateSyntax, ErrorsNameLineAndColumn) {
  auto r = jinja::Template::parse("line one\nline two {{ x +  }}\n");
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("line 2, column"), std::string::npos) << r.status().message();
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST(ChatTemplateSyntax, UnclosedBlocksSayWhatWasExpected) {
  auto r = jinja::Template::parse("{% for x in xs %}{{ x }}");
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("'endfor'"), std::string::npos) << r.status().message();
  r = jinja::Template::parse("{% if x %}a{% else %}b");
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("'endif'"), std::string::npos);
  EXPECT_FALSE(jinja::Template::parse("{{ x ").is_ok());
  EXPECT_FALSE(jinja::Template::parse("{# never closed").is_ok());
  EXPECT_FALSE(jinja::Template::parse("{% raw %}never closed").is_ok());
  EXPECT_FALSE(jinja::Template::parse("{{ 'unterminated }}").is_ok());
  EXPECT_FALSE(jinja::Template::parse("{{ (1, 2] }}").is_ok());
  EXPECT_FALSE(jinja::Template::parse("{% endfor %}").is_ok());
  EXPECT_FALSE(jinja::Template::parse("{% frobnicate %}").is_ok());
  EXPECT_FALSE(jinja::Template::parse("{% break %}").is_ok());
  EXPECT_FALSE(jinja::Template::parse("{{ 'a' is defined is defined }}").is_ok());
}

TEST(ChatTemplateSyntax, NoFileAccess) {
  for (const char* src : {"{% include 'x.jinja' %}", "{% import 'x' as y %}", "{% extends 'base' %}",
                          "{% from 'x' import y %}"}) {
    auto r = jinja::Template::parse(src);
    ASSERT_FALSE(r.is_ok()) << src;
    EXPECT_NE(r.status().message().find("cannot load"), std::string::npos) << r.status().message();
  }
}

TEST(ChatTemplateSyntax, InvalidUtf8IsAnError) {
  EXPECT_FALSE(jinja::Template::parse(std::string("ok \xff\xfe {{ x }}")).is_ok());
}

TEST(ChatTemplateSyntax, DeepNestingIsAnErrorNotACrash) {
  std::string deep = "{{ " + std::string(100000, '(') + "1" + std::string(100000, ')') + " }}";
  EXPECT_FALSE(jinja::Template::parse(deep).is_ok());
  std::string nots = "{{ " + std::string(0, ' ');
  for (int i = 0; i < 50000; ++i) nots += "not ";
  EXPECT_FALSE(jinja::Template::parse(nots + "x }}").is_ok());
  std::string negs = "{{ " + std::string(50000, '-') + "1 }}";
  EXPECT_FALSE(jinja::Template::parse(negs).is_ok());
  std::string ifs;
  for (int i = 0; i < 20000; ++i) ifs += "{% if true %}";
  EXPECT_FALSE(jinja::Template::parse(ifs).is_ok());
}

// ---------------------------------------------------------------- whitespace

TEST(ChatTemplateWhitespace, HuggingFaceEnvironment) {
  // trim_blocks drops the newline after a block tag, lstrip_blocks the
  // indentation before it; expressions are untouched.
  EXPECT_EQ(ok("  {% if true %}\n  x\n  {% endif %}\n  y"), "  x\n  y");
  EXPECT_EQ(ok("a  {{- ' b ' -}}  c"), "a b c");
  EXPECT_EQ(ok("{%- if true -%}\n  x  \n{%- endif -%}"), "x");
  EXPECT_EQ(ok("  {%+ if true %}x{% endif +%}\ny"), "  x\ny");
  EXPECT_EQ(ok("a {#- c -#} b {# c #}\n  {# d #}\nz"), "ab z");
  EXPECT_EQ(ok("{% raw %}{{ x }}{% endraw %}"), "{{ x }}");
  EXPECT_EQ(ok("last line\n"), "last line");      // one trailing newline is dropped
  EXPECT_EQ(ok("a\r\nb\rc"), "a\nb\nc");           // newlines normalized
  EXPECT_EQ(ok("{{ {'a': {'b': 1}} }}"), "{'a': {'b': 1}}");
}

// ---------------------------------------------------------------- semantics

TEST(ChatTemplateSemantics, UndefinedLikeJinja) {
  EXPECT_EQ(ok("[{{ missing }}]"), "[]");
  EXPECT_EQ(ok("{% if missing %}a{% else %}b{% endif %}"), "b");
  EXPECT_EQ(ok("{{ missing is defined }}{{ missing is undefined }}{{ missing|length }}{{ missing|default('x') }}"),
            "FalseTrue0x");
  EXPECT_EQ(ok("{% for x in missing %}a{% endfor %}{{ 'a' in missing }}{{ missing ~ 'y' }}"), "Falsey");
  EXPECT_EQ(ok("[{{ d.nokey }}][{{ d['nokey'] }}][{{ n.attr }}][{{ xs[10] }}]"), "[][][][]");
  EXPECT_NE(err("{{ missing.attr }}").find("'missing' is undefined"), std::string::npos);
  EXPECT_NE(err("{{ d.nokey.deeper }}").find("has no attribute 'nokey'"), std::string::npos);
  err("{{ missing + 1 }}");
  err("{{ missing < 1 }}");
  err("{{ missing() }}");
  err("{{ missing|tojson }}");
}

TEST(ChatTemplateSemantics, ScopingLikeJinja) {
  EXPECT_EQ(ok("{% set x = 1 %}{% for i in xs %}{% set x = i %}{% endfor %}{{ x }}"), "1");
  EXPECT_EQ(ok("{% set x = 1 %}{% if true %}{% set x = 2 %}{% endif %}{{ x }}"), "2");
  EXPECT_EQ(ok("{% set ns = namespace(x=1) %}{% for i in xs %}{% set ns.x = i %}{% endfor %}{{ ns.x }}"), "3");
  EXPECT_EQ(ok("{% macro m(a, b='d') %}{{ a }}{{ b }}{% endmacro %}{{ m(1) }}{{ m(1, b=2) }}"), "1d12");
  EXPECT_EQ(ok("{% macro m() %}<{{ caller() }}>{% endmacro %}{% call m() %}in{% endcall %}"), "<in>");
  EXPECT_EQ(ok("{% for x in xs %}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}"),
            "1TrueFalse3;2FalseFalse3;3FalseTrue3;");
  EXPECT_EQ(ok("{% for x in xs %}{{ loop.previtem }}|{{ loop.nextitem }};{% endfor %}"), "|2;1|3;2|;");
  EXPECT_EQ(ok("{% for x in xs if x != 2 %}{{ x }}{% else %}none{% endfor %}"), "13");
  EXPECT_EQ(ok("{% for x in xs %}{% if x == 2 %}{% continue %}{% endif %}{{ x }}{% endfor %}"), "13");
  EXPECT_EQ(ok("{% for x in xs %}{% if x == 2 %}{% break %}{% endif %}{{ x }}{% endfor %}"), "1");
}

TEST(ChatTemplateSemantics, PythonValues) {
  EXPECT_EQ(ok("{{ 1.0 }} {{ 1e20 }} {{ 1e-5 }} {{ 0.1 + 0.2 }} {{ 7 // 2 }} {{ -7 % 3 }} {{ 10 / 4 }}"),
            "1.0 1e+20 1e-05 0.30000000000000004 3 2 2.5");
  EXPECT_EQ(ok("{{ [1, 'a', none, true, {'k': \"it's\"}] }} {{ (1,) }}"), "[1, 'a', None, True, {'k': \"it's\"}] (1,)");
  EXPECT_EQ(ok("{{ s[1] }}{{ s|length }}{{ s[::-1] }}{{ xs[-1] }}{{ xs[1:] }}"), "\xc3\xa9" "5oll\xc3\xa9h3[2, 3]");
  EXPECT_EQ(ok("{{ 'ab' in 'cabd' }}{{ 2 in xs }}{{ 'a' in d }}{{ 1 == 1.0 }}{{ [1] == (1,) }}"), "TrueTrueTrueTrueFalse");
  EXPECT_EQ(ok("{{ 'a' and 'b' }}{{ '' or 'c' }}{{ 1 if false else 2 }}{{ 'x' ~ 1 ~ none }}"), "bc2x1None");
  err("{{ 'a' + 1 }}");
  err("{{ 1 / 0 }}");
  err("{{ 1 < 'a' }}");
  err("{{ xs.append(4) }}");  // the sandbox refuses mutation
  err("{{ d.update({}) }}");
}

TEST(ChatTemplateSemantics, RaiseExceptionCarriesTheMessage) {
  std::string m = err("{{ raise_exception('Roles must alternate') }}");
  EXPECT_NE(m.find("Roles must alternate"), std::string::npos) << m;
  EXPECT_NE(m.find("line 1"), std::string::npos) << m;
}

TEST(ChatTemplateSemantics, StrftimeNowUsesTheGivenTime) {
  jinja::RenderOptions opts;
  opts.now_unix = 1700000000;  // 2023-11-14, the same month in every time zone
  auto r = render("{{ strftime_now('%Y-%m') }}", default_vars(), opts);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(*r, "2023-11");
}

// ---------------------------------------------------------------- filters

struct Case {
  const char* src;
  const char* want;
};

TEST(ChatTemplateFilters, EachFilter) {
  const Case cases[] = {
      {"{{ -3|abs }}{{ -2.5|abs }}", "32.5"},
      {"{{ d|attr('a') }}|{{ xs|attr('count') is callable }}", "|True"},
      {"{{ xs|batch(2)|list }}{{ xs|batch(2, 0)|list }}", "[[1, 2], [3]][[1, 2], [3, 0]]"},
      {"{{ 'hELLO'|capitalize }}", "Hello"},
      {"[{{ 'ab'|center(6) }}]", "[  ab  ]"},
      {"{{ xs|count }}{{ xs|length }}{{ d|length }}{{ s|length }}", "3325"},
      {"{{ missing|default('x') }}{{ ''|default('y', true) }}{{ n|d('z') }}", "xyNone"},
      {"{{ {'b': 1, 'A': 2}|dictsort }}", "[('A', 2), ('b', 1)]"},
      {"{{ '<a&\"\\'>'|escape }}{{ '<'|e }}", "&lt;a&amp;&#34;&#39;&gt;&lt;"},
      {"{{ xs|first }}{{ 'abc'|first }}{{ xs|last }}", "1a3"},
      {"{{ '2.5'|float }}{{ 'x'|float }}{{ 3|float }}", "2.50.03.0"},
      {"{{ '%s=%d'|format('a', 1) }}{{ '%(k)s'|format(k='v') }}", "a=1v"},
      {"{{ 'a\\nb'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}", "a\n  b|  a\n  b"},
      {"{{ '42'|int }}{{ 3.9|int }}{{ 'x'|int }}{{ '0x1f'|int(base=16) }}{{ '1.5'|int }}", "4230311"},
      {"{{ d|items|list }}", "[('a', 1), ('b', None)]"},
      {"{{ xs|join(', ') }}{{ objs|join('-', attribute='v') }}", "1, 2, 32-1-3"},
      {"{{ 'ab'|list }}{{ d|list }}", "['a', 'b']['a', 'b']"},
      {"{{ 'AbC'|lower }}{{ '\xc3\x89T\xc3\x89'|lower }}", "abc\xc3\xa9t\xc3\xa9"},
      {"{{ objs|map(attribute='name', default='?')|join }}{{ xs|map('string')|join }}", "xy?123"},
      {"{{ xs|max }}{{ xs|min }}{{ ['b', 'A']|max }}{{ objs|max(attribute='v') }}", "31b{'v': 3}"},
      {"{{ xs|reject('odd')|list }}{{ objs|rejectattr('name')|list }}", "[2][{'v': 3}]"},
      {"{{ 'aaa'|replace('a', 'b') }}{{ 'aaa'|replace('a', 'b', 1) }}", "bbbbaa"},
      {"{{ xs|reverse|list }}{{ 'abc'|reverse }}", "[3, 2, 1]cba"},
      {"{{ 2.5|round }}{{ 2.675|round(2) }}{{ 2.1|round(method='ceil') }}{{ 7|round }}", "2.02.673.07"},
      {"{{ '<b>'|safe }}", "<b>"},
      {"{{ xs|select('odd')|list }}{{ objs|selectattr('name', 'equalto', 'y')|list }}", "[1, 3][{'name': 'y', 'v': 1}]"},
      {"{{ [3, 1, 2]|sort }}{{ ['b', 'A', 'a']|sort }}{{ objs|sort(attribute='v', reverse=true)|map(attribute='v')|list }}",
       "[1, 2, 3]['A', 'a', 'b'][3, 2, 1]"},
      {"{{ xs|string }}{{ n|string }}{{ missing|string }}", "[1, 2, 3]None"},
      {"{{ xs|sum }}{{ objs|sum(attribute='v') }}{{ xs|sum(start=10) }}", "6616"},
      {"{{ 'hello wORLD'|title }}", "Hello World"},
      {"{{ d|tojson }}|{{ s|tojson }}|{{ xs|tojson(indent=2) }}|{{ d|tojson(separators=(',', ':')) }}",
       "{\"a\": 1, \"b\": null}|\"h\xc3\xa9llo\"|[\n  1,\n  2,\n  3\n]|{\"a\":1,\"b\":null}"},
      {"{{ s|tojson(ensure_ascii=true) }}{{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}", "\"h\\u00e9llo\"{\"a\": 2, \"b\": 1}"},
      {"[{{ '  a b \\n'|trim }}][{{ 'xxaxx'|trim('x') }}]", "[a b][a]"},
      {"{{ 'Hello World and more'|truncate(12) }}|{{ 'Hello World'|truncate(8, true, '!', 0) }}", "Hello...|Hello W!"},
      {"{{ [1, 2, 1, 3]|unique|list }}{{ ['a', 'A']|unique|list }}", "[1, 2, 3]['a']"},
      {"{{ 'abc'|upper }}{{ 'stra\xc3\x9f'|upper }}", "ABCSTRASS"},
      {"{{ 'one two, three'|wordcount }}", "3"},
  };
  for (const auto& c : cases) EXPECT_EQ(ok(c.src), c.want) << c.src;
  EXPECT_NE(err("{{ xs|nosuch }}").find("no filter named 'nosuch'"), std::string::npos);
  err("{{ 5|length }}");
  err("{{ xs|select('odd')|length }}");  // generators have no length, as in Python
  err("{{ xs|map('string')|tojson }}");   // nor a JSON form
}

TEST(ChatTemplateFilters, EachTest) {
  const Case cases[] = {
      {"{{ x is defined }}{{ xs is defined }}{{ x is undefined }}", "FalseTrueTrue"},
      {"{{ n is none }}{{ 0 is none }}", "TrueFalse"},
      {"{{ true is boolean }}{{ 1 is boolean }}{{ false is false }}{{ true is true }}{{ 1 is true }}", "TrueFalseTrueTrueFalse"},
      {"{{ 1 is integer }}{{ 1.0 is float }}{{ true is number }}{{ 'a' is number }}", "TrueTrueTrueFalse"},
      {"{{ s is string }}{{ d is mapping }}{{ xs is mapping }}", "TrueTrueFalse"},
      {"{{ xs is iterable }}{{ s is iterable }}{{ 1 is iterable }}{{ xs is sequence }}", "TrueTrueFalseTrue"},
      {"{{ range is callable }}{{ xs is callable }}", "TrueFalse"},
      {"{{ 3 is odd }}{{ 3 is even }}{{ 9 is divisibleby 3 }}", "TrueFalseTrue"},
      {"{{ 1 is eq 1 }}{{ 1 is equalto 2 }}{{ 1 is ne 2 }}{{ 1 is lt 2 }}{{ 2 is le 2 }}{{ 3 is gt 2 }}{{ 2 is ge 3 }}",
       "TrueFalseTrueTrueTrueTrueFalse"},
      {"{{ 2 is in xs }}{{ 'z' is in 'xyz' }}", "TrueTrue"},
      {"{{ 'abc' is lower }}{{ 'ABC' is upper }}{{ 'aBc' is lower }}", "TrueTrueFalse"},
      {"{{ none is sameas none }}{{ xs is sameas xs }}", "TrueTrue"},
      {"{{ 'upper' is filter }}{{ 'odd' is test }}{{ 'nope' is filter }}", "TrueTrueFalse"},
      {"{{ x is not defined }}{{ n is not none }}", "TrueFalse"},
  };
  for (const auto& c : cases) EXPECT_EQ(ok(c.src), c.want) << c.src;
  EXPECT_NE(err("{{ 1 is nosuch }}").find("no test named"), std::string::npos);
}

TEST(ChatTemplateFilters, StringDictAndListMethods) {
  EXPECT_EQ(ok("{{ 'a,b,,c'.split(',') }}{{ ' a  b '.split() }}{{ 'a b c'.rsplit(' ', 1) }}"),
            "['a', 'b', '', 'c']['a', 'b']['a b', 'c']");
  EXPECT_EQ(ok("{{ '\\n x \\n'.strip() }}|{{ 'xxy'.lstrip('x') }}|{{ 'yxx'.rstrip('x') }}"), "x|y|y");
  EXPECT_EQ(ok("{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'c')) }}"), "TrueTrue");
  EXPECT_EQ(ok("{{ 'aXa'.replace('a', 'b') }}{{ 'ab'.upper() }}{{ 'AB'.lower() }}{{ 'ab cd'.title() }}"), "bXbABabAb Cd");
  EXPECT_EQ(ok("{{ '{} and {name}'.format(1, name='x') }}{{ 'abc'.find('c') }}{{ '-'.join(['a', 'b']) }}"),
            "1 and x2a-b");
  EXPECT_EQ(ok("{{ d.get('a') }}{{ d.get('zz', 'no') }}{{ d.keys()|list }}{{ d.values()|list }}{{ d.items()|list }}"),
            "1no['a', 'b'][1, None][('a', 1), ('b', None)]");
  EXPECT_EQ(ok("{{ xs.index(2) }}{{ xs.count(3) }}"), "11");
  EXPECT_EQ(ok("{{ range(3)|list }}{{ range(1, 7, 3)|list }}{{ dict(a=1) }}{{ namespace(a=2).a }}"),
            "[0, 1, 2][1, 4]{'a': 1}2");
}

// ---------------------------------------------------------------- limits

TEST(ChatTemplateLimits, LoopIterationsAreBounded) {
  jinja::RenderOptions opts;
  opts.limits.max_loop_iterations = 10000;
  std::string m = err("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}", opts);
  EXPECT_NE(m.find("loop iterations"), std::string::npos) << m;
  // The sandbox's range limit.
  EXPECT_NE(err("{{ range(1000000)|length }}").find("Range too big"), std::string::npos);
}

TEST(ChatTemplateLimits, RecursionIsBounded) {
  std::string m = err("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  EXPECT_NE(m.find("nested"), std::string::npos) << m;
  // Mutual recursion through a namespace and call blocks too.
  err("{% set ns = namespace() %}{% macro a() %}{{ ns.b() }}{% endmacro %}{% macro b() %}{{ a() }}{% endmacro %}"
      "{% set ns.b = b %}{{ a() }}");
  err("{% macro m() %}{% call m() %}x{% endcall %}{{ caller() if false }}{% endmacro %}{{ m() }}");
  // Deeply nested statements inside a recursing macro share the same bound.
  std::string body;
  for (int i = 0; i < 100; ++i) body += "{% if true %}";
  body += "{{ f(n + 1) }}";
  for (int i = 0; i < 100; ++i) body += "{% endif %}";
  m = err("{% macro f(n) %}" + body + "{% endmacro %}{{ f(0) }}");
  EXPECT_NE(m.find("nested"), std::string::npos) << m;
}

TEST(ChatTemplateLimits, OutputAndValueSizesAreBounded) {
  jinja::RenderOptions opts;
  opts.limits.max_output_bytes = 1 << 20;
  std::string m = err("{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}", opts);
  EXPECT_NE(m.find("output"), std::string::npos) << m;
  m = err("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", opts);
  EXPECT_NE(m.find("bytes"), std::string::npos) << m;
  err("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", opts);
  err("{{ 'x' * 100000000000 }}", opts);
  err("{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}", opts);
  err("{{ ('%0100000000d' % 1)|length }}", opts);
  err("{{ 'a'.center(100000000) }}", opts);
  err("{{ xs|tojson(indent=100000000) }}", opts);
}

TEST(ChatTemplateLimits, DeepAndCyclicValuesAreErrorsNotCrashes) {
  // Each would build or print a structure deep enough to overflow the stack.
  err("{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = [ns.l] %}{% endfor %}");
  err("{% set ns = namespace(d={}) %}{% for i in range(100000) %}{% set ns.d = {'k': ns.d} %}{% endfor %}");
  err("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}");
  err("{% set ns = namespace() %}{% set ns.me = [ns] %}{{ ns|tojson }}");
  // A chain of namespaces, each holding the previous one.
  err("{% set ns = namespace(cur=none) %}{% for i in range(20000) %}{% set n = namespace(prev=ns.cur) %}"
      "{% set ns.cur = n %}{% endfor %}{{ ns.cur }}");
  // Macros stored in the frames they close over: freed without leaking or looping.
  EXPECT_EQ(ok("{% macro m() %}x{% endmacro %}{% set ns = namespace(f=m) %}{{ ns.f() }}"), "x");
}

TEST(ChatTemplateLimits, TruncatedAndMutatedRealTemplatesNeverCrash) {
  const std::filesystem::path dir = std::filesystem::path(STRATA_SHARED_DIR) / "data" / "templates";
  if (!std::filesystem::is_directory(dir)) GTEST_SKIP() << "no templates in " << dir;
  const json vars = json::parse(R"({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "abcdefghi", "type": "function",
        "function": {"name": "f", "arguments": {"a": 1}}}]}, {"role": "tool", "tool_call_id": "abcdefghi", "content": "r"}],
      "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}], "add_generation_prompt": true,
      "bos_token": "<s>", "eos_token": "</s>"})");
  std::mt19937 rng(1234);
  size_t rendered = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream f(entry.path(), std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    const std::string src = ss.str();
    for (size_t cut = 0; cut <= src.size(); cut += 7) {
      auto t = jinja::Template::parse(src.substr(0, cut));
      if (t.is_ok()) rendered += t->render_json(vars).is_ok();
    }
    for (int trial = 0; trial < 300; ++trial) {
      std::string mutated = src;
      for (int k = 0; k < 3; ++k) {
        const char* alphabet = "{}%#-+()[]|.,'\"~ \nab";
        mutated[rng() % mutated.size()] = alphabet[rng() % 20];
      }
      auto t = jinja::Template::parse(mutated);
      if (t.is_ok()) rendered += t->render_json(vars).is_ok();
    }
  }
  EXPECT_GT(rendered, 0u);
}

// ---------------------------------------------------------------- ChatTemplate

TEST(ChatTemplateApi, RendersMessagesToolsAndExtraVariables) {
  auto t = ChatTemplate::parse(
      "{{ bos_token }}{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}"
      "{% if tools %}tools={{ tools|length }}{% endif %}{% if add_generation_prompt %}>{% endif %}"
      "{{ enable_thinking is defined }}{{ documents is none }}{{ eos_token }}");
  ASSERT_TRUE(t.is_ok()) << t.status().message();
  ChatTemplateInputs in;
  in.messages = json::parse(R"([{"role": "developer", "content": "be brief"}, {"role": "user", "content": "hi"}])");
  in.bos_token = "<s>";
  in.eos_token = "</s>";
  auto r = t->render(in);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(*r, "<s>[system:be brief][user:hi]>FalseTrue</s>");  // developer -> system

  in.tools = json::parse(R"([{"type": "function", "function": {"name": "f"}}])");
  in.add_generation_prompt = false;
  in.extra["enable_thinking"] = false;
  r = t->render(in);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(*r, "<s>[system:be brief][user:hi]tools=1TrueTrue</s>");
}

TEST(ChatTemplateApi, DeveloperRoleKeptWhenTheTemplateKnowsIt) {
  auto t = ChatTemplate::parse("{% for m in messages %}{{ m.role }}{% endfor %}{# developer #}");
  ASSERT_TRUE(t.is_ok());
  ChatTemplateInputs in;
  in.messages = json::parse(R"([{"role": "developer", "content": "x"}])");
  EXPECT_EQ(*t->render(in), "developer");
}

TEST(ChatTemplateApi, ChatmlFallback) {
  ChatTemplateInputs in;
  in.messages = json::parse(R"([{"role": "user", "content": "hi"}, {"role": "assistant", "content": null}])");
  auto r = ChatTemplate::chatml().render(in);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(*r, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateApi, BadInputsAreErrors) {
  auto t = ChatTemplate::chatml();
  ChatTemplateInputs in;
  in.messages = json::object();
  EXPECT_FALSE(t.render(in).is_ok());
  in.messages = json::array();
  in.tools = "not a list";
  EXPECT_FALSE(t.render(in).is_ok());
}

TEST(ChatTemplateApi, ConcurrentRendersOfOneTemplate) {
  auto t = jinja::Template::parse(
      "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{{ m|tojson }}{% endfor %}{{ ns.n }}");
  ASSERT_TRUE(t.is_ok());
  json vars = {{"messages", json::array()}};
  for (int i = 0; i < 200; ++i) vars["messages"].push_back({{"role", "user"}, {"content", std::to_string(i)}});
  const std::string want = *t->render_json(vars);
  std::vector<std::thread> threads;
  std::vector<int> good(4, 0);
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (int i = 0; i < 50; ++i) good[k] += t->render_json(vars).value() == want;
    });
  }
  for (auto& th : threads) th.join();
  for (int g : good) EXPECT_EQ(g, 50);
}

}  // namespace
}  // namespace strata::chat
