#!/usr/bin/env python3
"""Chat-template fixtures: what Hugging Face transformers' `apply_chat_template` renders.

Run by scripts/make-template-fixtures.sh (which installs jinja2 and gguf into qeval's cache and
fetches llama.cpp's templates). Writes one JSON file, a list of cases, each:

  {"template_name", "template", "message_set", "messages", "add_generation_prompt",
   "bos_token", "eos_token", "unk_token", "pad_token", "expected" | "error"}

"expected" is the rendered string; "error" is "<exception class>: <message>" when rendering
raised. A token given as null was NOT passed to the template (the variable is undefined there,
as in transformers when the tokenizer has no such special token).

What is emulated (transformers/utils/chat_template_utils.py, `_compile_jinja_template` and the
render call of `apply_chat_template` / `render_jinja_template`):
  * jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
    extensions=[AssistantTracker, jinja2.ext.loopcontrols]); autoescape off (the default).
    AssistantTracker only adds the `{% generation %}...{% endgeneration %}` block, which
    renders its body unchanged when no assistant mask is asked for; here a stand-in with the
    same behaviour is added only for templates that use the tag (for the others it changes
    nothing).
  * filters["tojson"] = json.dumps(x, ensure_ascii=False, indent=None, separators=None,
    sort_keys=False) (replaces jinja2's HTML-escaping tojson).
  * globals["raise_exception"](msg) raises jinja2.exceptions.TemplateError(msg).
  * globals["strftime_now"](fmt) -- transformers uses datetime.now(); here a FIXED time,
    2026-07-26 09:30:00, so the fixtures are reproducible. The Rust side must use the same.
  * template.render(messages=..., tools=None, documents=None, add_generation_prompt=...,
    bos_token=..., eos_token=..., unk_token=..., pad_token=...) -- the special tokens as
    transformers passes them from tokenizer.special_tokens_map (strings). The output is not
    stripped or otherwise post-processed (continue_final_message is not used).
"""

import argparse
import json
import re
import sys
from collections import Counter, OrderedDict
from datetime import datetime
from pathlib import Path

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.sandbox

FIXED_NOW = datetime(2026, 7, 26, 9, 30, 0)

# Special tokens passed to llama.cpp's .jinja templates (they come without a tokenizer).
JINJA_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}


class GenerationBlock(jinja2.ext.Extension):
    """Stand-in for transformers' AssistantTracker: `{% generation %}body{% endgeneration %}`
    renders body (the tracker only records indices, which plain rendering does not ask for)."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

    def _generation_support(self, caller):
        return caller()


USES_GENERATION = re.compile(r"\{%-?\+?\s*generation\b")


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def strftime_now(fmt):
    return FIXED_NOW.strftime(fmt)


def compile_template(source):
    extensions = [jinja2.ext.loopcontrols]
    if USES_GENERATION.search(source):
        extensions.insert(0, GenerationBlock)
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=extensions)
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(source)


LONG_TEXT = (
    "I am writing a short report on how quantization changes the quality of small language models. "
    "The first section explains what perplexity measures and why it is computed on held-out text.\n\n"
    "The second section compares 8-bit, 6-bit and 4-bit weights. For each level I list the file size, "
    "the tokens per second on two CPU cores, and the KL divergence from the 16-bit reference.\n\n"
    "The third section is about chat templates: the same model can look much worse if the prompt is "
    "not formatted the way it was trained, so the evaluation must reproduce the template exactly.\n\n"
    "Could you suggest a clearer structure for these three sections, and point out anything missing?"
)

# name -> (messages, add_generation_prompt values to render with)
MESSAGE_SETS = OrderedDict(
    [
        ("user_only", ([{"role": "user", "content": "Hello, how are you?"}], [True, False])),
        (
            "system_user",
            (
                [
                    {"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": "What is the capital of France?"},
                ],
                [True],
            ),
        ),
        (
            "multi_turn",
            (
                [
                    {"role": "system", "content": "You are a concise assistant."},
                    {"role": "user", "content": "Name a prime number."},
                    {"role": "assistant", "content": "7"},
                    {"role": "user", "content": "And a larger one?"},
                ],
                [True, False],
            ),
        ),
        (
            "ends_with_assistant",
            (
                [
                    {"role": "user", "content": "Say hi."},
                    {"role": "assistant", "content": "Hi!"},
                ],
                [False],
            ),
        ),
        (
            "unicode_escapes",
            (
                [
                    {
                        "role": "user",
                        "content": 'Café é 中文 emoji 🦀👍🏽 "double" \'single\' back\\slash \\n not-a-newline\n'
                        "real newline\ttab {{ not jinja }} {% raw %} <b>&amp;</b>",
                    }
                ],
                [True],
            ),
        ),
        (
            "whitespace",
            ([{"role": "user", "content": "  \n  leading and trailing whitespace \t\n\n  "}], [True]),
        ),
        ("long_multiparagraph", ([{"role": "user", "content": LONG_TEXT}], [True])),
        (
            "empty_assistant",
            (
                [
                    {"role": "user", "content": "First question?"},
                    {"role": "assistant", "content": ""},
                    {"role": "user", "content": "Second question?"},
                ],
                [True],
            ),
        ),
    ]
)


def gguf_template(path):
    """(chat_template, tokens dict) from a GGUF file's metadata, or (None, None)."""
    from gguf import GGUFReader  # imported here so that --help works without gguf

    reader = GGUFReader(str(path), "r")  # np.memmap: tensor data is not read

    def field(name):
        f = reader.fields.get(name)
        return None if f is None else f.contents()

    template = field("tokenizer.chat_template")
    if template is None:
        return None, None
    tokens = field("tokenizer.ggml.tokens") or []

    def tok(key):
        idx = field(key)
        if idx is None or not (0 <= int(idx) < len(tokens)):
            return None
        return tokens[int(idx)]

    special = {
        "bos_token": tok("tokenizer.ggml.bos_token_id"),
        "eos_token": tok("tokenizer.ggml.eos_token_id"),
        "unk_token": tok("tokenizer.ggml.unknown_token_id"),
        "pad_token": tok("tokenizer.ggml.padding_token_id"),
    }
    return template, special


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--templates-dir", required=True, type=Path, help="folder of *.jinja templates")
    ap.add_argument("--models", type=Path, help="folder of *.gguf files (their tokenizer.chat_template)")
    ap.add_argument("--out", required=True, type=Path, help="JSON file to write")
    args = ap.parse_args()

    sources = []  # (name, source, tokens)
    for p in sorted(args.templates_dir.glob("*.jinja")):
        sources.append((p.stem, p.read_bytes().decode("utf-8"), dict(JINJA_TOKENS)))
    if not sources:
        sys.exit(f"make_template_fixtures: no *.jinja in {args.templates_dir}")
    if args.models is not None:
        for p in sorted(args.models.glob("*.gguf")):
            template, special = gguf_template(p)
            if template is None:
                print(f"note: {p.name} has no tokenizer.chat_template; skipped")
                continue
            sources.append(("gguf:" + p.stem, template, special))

    cases = []
    raised = Counter()
    first_error = {}
    skipped = []
    used = 0
    for name, source, special in sources:
        try:
            compiled = compile_template(source)
        except jinja2.exceptions.TemplateSyntaxError as e:
            skipped.append(name)
            print(f"note: {name}: jinja2 cannot parse it ({type(e).__name__}: {e}, line {e.lineno}); skipped")
            continue
        used += 1
        passed = {k: v for k, v in special.items() if v is not None}
        for set_name, (messages, agps) in MESSAGE_SETS.items():
            for agp in agps:
                case = OrderedDict(
                    [
                        ("template_name", name),
                        ("template", source),
                        ("message_set", set_name),
                        ("messages", messages),
                        ("add_generation_prompt", agp),
                    ]
                )
                case.update((k, special.get(k)) for k in ("bos_token", "eos_token", "unk_token", "pad_token"))
                try:
                    # deep-copied messages: a template cannot change the next case's input
                    out = compiled.render(
                        messages=json.loads(json.dumps(messages)),
                        tools=None,
                        documents=None,
                        add_generation_prompt=agp,
                        **passed,
                    )
                    case["expected"] = out
                except Exception as e:  # TemplateError, UndefinedError, SecurityError, TypeError, ...
                    case["error"] = f"{type(e).__name__}: {e}"
                    raised[name] += 1
                    first_error.setdefault(name, case["error"])
                cases.append(case)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        json.dump(cases, f, ensure_ascii=False, indent=1)
        f.write("\n")

    n_err = sum(raised.values())
    print(
        f"templates: {used} rendered ({len(sources)} found, {len(skipped)} skipped as unparsable)"
        f"; message sets: {len(MESSAGE_SETS)}; cases: {len(cases)} ({len(cases) - n_err} rendered, {n_err} raised)"
    )
    if raised:
        print("raised, by template (count: first error):")
        for name in sorted(raised):
            msg = first_error[name].replace("\n", " ")
            if len(msg) > 160:
                msg = msg[:157] + "..."
            print(f"  {name}: {raised[name]}: {msg}")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
