"""response_format constraints checked by independent parsers: documents that
strata's JSON automaton generates (random walks over allowed bytes, and over
allowed tokens of a real vocabulary through the token mask) must parse with
Python's json and validate with jsonschema; mutated documents the automaton
accepts must validate too; valid documents in compact form must be accepted;
unsupported keywords must be refused with their JSON pointer."""
import json
import os
import random
import subprocess

import jsonschema
import pytest

TOOL = os.path.join(os.environ["STRATA_TEST_BIN_DIR"], "json_schema_tool")
VOCAB = os.path.join(os.environ["STRATA_SHARED_DIR"], "data", "vocab", "ggml-vocab-gpt-2.gguf")

SCHEMAS = {
    "person": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 20},
            "age": {"type": "integer"},
            "email": {"type": ["string", "null"]},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}, "maxItems": 3},
        },
        "required": ["name", "age"],
        "additionalProperties": False,
    },
    "enums": {
        "type": "object",
        "properties": {
            "color": {"enum": ["red", "green", "blue", "dark \"blue\"", "é€😀"]},
            "size": {"enum": [1, 12, 123, -1.5, None, True]},
            "fixed": {"const": {"a": [1, 2], "b": "x"}},
        },
        "required": ["color", "size", "fixed"],
        "additionalProperties": False,
    },
    "numbers": {
        "type": "array",
        "items": {"anyOf": [{"type": "number"}, {"type": "integer"}, {"type": "boolean"}]},
        "minItems": 2,
        "maxItems": 6,
    },
    "tree": {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "value": {"type": "string", "maxLength": 8},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2},
                },
                "required": ["value"],
                "additionalProperties": False,
            }
        },
        "$ref": "#/$defs/node",
    },
    "open_object": {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "meta": {"type": "object"}},
        "required": ["id"],
        "additionalProperties": {"type": ["string", "number"]},
    },
    "any_of_objects": {
        "anyOf": [
            {"type": "object", "properties": {"kind": {"const": "circle"}, "r": {"type": "number"}},
             "required": ["kind", "r"], "additionalProperties": False},
            {"type": "object", "properties": {"kind": {"const": "rect"}, "w": {"type": "number"},
                                              "h": {"type": "number"}},
             "required": ["kind", "w", "h"], "additionalProperties": False},
            {"type": "null"},
        ]
    },
    "strings": {
        "type": "array",
        "items": {"type": ["string", "null"], "minLength": 2, "maxLength": 4},
        "maxItems": 4,
    },
}

JSON_OBJECT = {"response_format": {"type": "json_object"}}


def run_tool(*args, stdin=None, check=True):
    p = subprocess.run([TOOL, *map(str, args)], input=stdin, capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"json_schema_tool {' '.join(map(str, args))}: {p.stderr}{p.stdout}")
    return p


def strict_loads(text):
    """json.loads that rejects duplicate keys (dict would hide them)."""
    def pairs(items):
        keys = [k for k, _ in items]
        assert len(keys) == len(set(keys)), f"duplicate keys in {text!r}"
        return dict(items)
    return json.loads(text, object_pairs_hook=pairs)


def schema_file(tmp_path, name, obj):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def validate(schema, doc):
    if schema is JSON_OBJECT:
        assert isinstance(doc, dict)
    else:
        jsonschema.Draft202012Validator(schema).validate(doc)


@pytest.mark.parametrize("name", [*SCHEMAS, "json_object"])
def test_byte_walks_validate(tmp_path, name):
    schema = JSON_OBJECT if name == "json_object" else SCHEMAS[name]
    path = schema_file(tmp_path, name, schema)
    docs = json.loads(run_tool("walk", path, 40, 1234).stdout)
    assert len(docs) == 40
    for text in docs:
        validate(schema, strict_loads(text))
    assert len(set(docs)) > 10, "walks should differ"


@pytest.mark.parametrize("name", ["person", "enums", "tree", "json_object"])
def test_token_walks_validate(tmp_path, name):
    if not os.path.exists(VOCAB):
        pytest.skip(f"{VOCAB} missing")
    schema = JSON_OBJECT if name == "json_object" else SCHEMAS[name]
    path = schema_file(tmp_path, name, schema)
    docs = json.loads(run_tool("walk-tokens", path, VOCAB, 4, 99).stdout)
    assert len(docs) == 4
    for text in docs:
        validate(schema, strict_loads(text))


RANDOM_VALUES = [0, -7, 1.5, 12345678901234567890, "", "x", "longer than twenty characters", None, True, False,
                 [], [1, "a"], {}, {"k": 1}, "é€😀", "dark \"blue\""]


def mutate(doc, rng):
    """A random edit somewhere in the document: replace, delete or add."""
    doc = json.loads(json.dumps(doc))
    containers = []

    def collect(v):
        if isinstance(v, (dict, list)):
            containers.append(v)
            for c in (v.values() if isinstance(v, dict) else v):
                collect(c)
    collect(doc)
    if not containers or rng.random() < 0.1:
        return rng.choice(RANDOM_VALUES)
    c = rng.choice(containers)
    op = rng.choice(["replace", "delete", "add"])
    if isinstance(c, dict):
        if op == "add" or not c:
            c[rng.choice(["zz", "name", "id", "value", "kind", "r"])] = rng.choice(RANDOM_VALUES)
        elif op == "delete":
            del c[rng.choice(list(c))]
        else:
            c[rng.choice(list(c))] = rng.choice(RANDOM_VALUES)
    else:
        if op == "add" or not c:
            c.insert(rng.randrange(len(c) + 1), rng.choice(RANDOM_VALUES))
        elif op == "delete":
            c.pop(rng.randrange(len(c)))
        else:
            c[rng.randrange(len(c))] = rng.choice(RANDOM_VALUES)
    return doc


def compact(doc):
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize("name", [*SCHEMAS, "json_object"])
def test_accepted_means_valid(tmp_path, name):
    """Soundness against jsonschema on edited documents, and completeness on
    valid documents in compact form."""
    schema = JSON_OBJECT if name == "json_object" else SCHEMAS[name]
    path = schema_file(tmp_path, name, schema)
    valid = [strict_loads(t) for t in json.loads(run_tool("walk", path, 30, 777).stdout)]
    rng = random.Random(5)
    candidates = [compact(d) for d in valid]
    candidates += [compact(mutate(d, rng)) for d in valid for _ in range(8)]
    verdicts = json.loads(run_tool("check", path, stdin=json.dumps(candidates, ensure_ascii=False)).stdout)
    n_invalid = 0
    for text, (prefix_ok, complete) in zip(candidates, verdicts):
        doc = json.loads(text)
        try:
            validate(schema, doc)
            ok = True
        except (jsonschema.ValidationError, AssertionError):
            ok = False
        if complete:
            assert ok, f"accepted but invalid: {text}"
        n_invalid += not ok
    for text, (_, complete) in zip(candidates[:len(valid)], verdicts):
        assert complete, f"valid compact document refused: {text}"
    assert n_invalid > 0, "the edits should produce invalid documents"


UNSUPPORTED = [
    ({"type": "string", "pattern": "^[a-z]+$"}, "'pattern'", "/pattern"),
    ({"type": "string", "format": "email"}, "'format'", "/format"),
    ({"type": "integer", "minimum": 1}, "'minimum'", "/minimum"),
    ({"type": "number", "maximum": 1}, "'maximum'", "/maximum"),
    ({"type": "number", "exclusiveMinimum": 1}, "'exclusiveMinimum'", "/exclusiveMinimum"),
    ({"type": "number", "multipleOf": 3}, "'multipleOf'", "/multipleOf"),
    ({"type": "object", "properties": {"a": {"type": "array", "uniqueItems": True}}}, "'uniqueItems'",
     "/properties/a/uniqueItems"),
    ({"type": "object", "patternProperties": {"^x": {}}}, "'patternProperties'", "/patternProperties"),
    ({"type": "object", "minProperties": 1}, "'minProperties'", "/minProperties"),
    ({"type": "object", "propertyNames": {"maxLength": 3}}, "'propertyNames'", "/propertyNames"),
    ({"type": "array", "contains": {"type": "string"}}, "'contains'", "/contains"),
    ({"type": "array", "prefixItems": [{"type": "string"}]}, "'prefixItems'", "/prefixItems"),
    ({"oneOf": [{"type": "string"}, {"type": "null"}]}, "'oneOf'", "/oneOf"),
    ({"allOf": [{"type": "string"}]}, "'allOf'", "/allOf"),
    ({"not": {"type": "string"}}, "'not'", "/not"),
    ({"type": "string", "nullable": True}, "'nullable'", "/nullable"),
    ({"type": "object", "properties": {"x": {"anyOf": [{"type": "string", "format": "uri"}]}}}, "'format'",
     "/properties/x/anyOf/0/format"),
    ({"$defs": {"d": {"type": "string", "pattern": "a"}}, "$ref": "#/$defs/d"}, "'pattern'", "/$defs/d/pattern"),
]


@pytest.mark.parametrize("schema,keyword,pointer", UNSUPPORTED)
def test_unsupported_keywords_are_refused(tmp_path, schema, keyword, pointer):
    path = schema_file(tmp_path, "s", {"response_format": {"type": "json_schema",
                                                           "json_schema": {"name": "t", "schema": schema}}})
    p = run_tool("compile", path, check=False)
    assert p.returncode == 1
    msg = p.stdout.strip()
    assert keyword in msg and ("response_format.json_schema.schema" + pointer) in msg, msg
    assert "\n" not in msg


def test_supported_schemas_compile(tmp_path):
    for name, schema in SCHEMAS.items():
        jsonschema.Draft202012Validator.check_schema(schema)
        assert run_tool("compile", schema_file(tmp_path, name, schema)).stdout.strip() == "ok"
