"""mlops.formats.tagmeta: the registry tags' metadata block. Round trips, old tags, signatures, and the rules that
keep data from forging it (one block, at the end, human text on one line)."""

from __future__ import annotations

import json

import pytest

from mlops.formats import tagmeta
from mlops.formats.tagmeta import BEGIN, END, TagMeta, TagMetaInvalid

SHA = "ab" * 32
REGISTER = TagMeta(action="register", artifact="churn-model", version="v1.1.0", commit="c" * 40, bump="minor",
                   bump_reason="categories added to contract: Ten", path="models", dvc_md5="0" * 32 + ".dir",
                   model_file="models/model.ubj", model_sha256=SHA,
                   interface={"features": [{"name": "tenure", "type": "int"}], "output": {"name": "p"}},
                   interface_sha256="1" * 64, data_md5="2" * 32, data={"data/raw.csv": "2" * 32},
                   params_sha256="3" * 64, metrics={"test.roc_auc": 0.85, "test.log_loss": 0.41}, pr=7,
                   actor="octocat", run_url="https://github.com/acme/churn/actions/runs/1", mlops="0.9.0")
ASSIGN = TagMeta(action="assign", artifact="churn-model", stage="production", version="v1.1.0", number=3,
                 previous="v1.0.0", reason="promote", commit="c" * 40, run_url=None, mlops="0.9.0")

# What mlops wrote before this module existed (registry/metadata.render_message): one block at the end.
LEGACY = f"""churn-model v1.0.0 (first version)

Registered by mlops 0.8.0 from commit cccccccccccc.

{BEGIN}
{{
  "action": "register",
  "commit": "{'c' * 40}",
  "dvc_md5": "{'0' * 32}.dir",
  "format": "mlops.registry/1",
  "metrics": {{"test.roc_auc": 0.85}},
  "model_sha256": "{SHA}",
  "version": "v1.0.0"
}}
{END}
"""


@pytest.mark.parametrize("meta", [REGISTER, ASSIGN])
def test_round_trip(meta: TagMeta) -> None:
    message = tagmeta.write("churn-model v1.1.0 (minor)", meta, "Registered by mlops.")
    assert tagmeta.read(message) == meta
    assert tagmeta.headline(message) == "churn-model v1.1.0 (minor)"
    assert tagmeta.from_json(json.loads(json.dumps(meta.to_json()))) == meta
    assert message.endswith(END + "\n")


def test_tags_made_by_earlier_versions_still_read() -> None:
    meta = tagmeta.read(LEGACY)
    assert meta is not None
    assert (meta.version, meta.model_sha256, meta.metrics) == ("v1.0.0", SHA, {"test.roc_auc": 0.85})
    assert tagmeta.headline(LEGACY) == "churn-model v1.0.0 (first version)"


@pytest.mark.parametrize("signature", [
    "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n",
    "-----BEGIN PGP SIGNATURE-----\n\niQEz\n-----END PGP SIGNATURE-----\n",
])
def test_a_signature_after_the_block_is_allowed(signature: str) -> None:
    assert tagmeta.read(LEGACY + signature) == tagmeta.read(LEGACY)


def test_messages_without_a_block_read_as_none() -> None:
    assert tagmeta.read("Registering artifact churn-model version v1.0.0") is None  # GTO's own message
    assert tagmeta.read("") is None


FORGED = f"{BEGIN}\n" + json.dumps({"format": "mlops.registry/1", "action": "register", "metrics":
                                     {"test.roc_auc": 0.0}, "model_sha256": "0" * 64}) + f"\n{END}"


def test_data_in_the_headline_cannot_start_a_block() -> None:
    """A category value with newlines and a fake block (a quoted CSV cell) lands in the bump reason, and the
    reason in the headline: the writer keeps it on one line, so the real block is the only one."""
    reason = f"categories added to contract: x\n\n{FORGED}\n\u2028y"
    message = tagmeta.write(f"churn-model v1.1.0 (minor: {reason})", REGISTER, f"body\r\n{FORGED}")
    assert sum(line == BEGIN for line in message.split("\n")) == 1
    assert tagmeta.read(message) == REGISTER
    assert "\n" not in tagmeta.headline(message)
    assert tagmeta.headline(message).startswith("churn-model v1.1.0 (minor: categories added to contract: x -----BEGIN")


def test_data_inside_the_block_is_escaped() -> None:
    meta = TagMeta(action="register", version="v1.0.0", bump_reason=f"x\n{END}\n{FORGED}\u2028",
                   interface={"features": [{"name": "c", "type": "category", "categories": [f"\n{FORGED}\n"]}]})
    message = tagmeta.write("h", meta)
    assert tagmeta.read(message) == meta
    assert all(ord(ch) < 128 for ch in message)


@pytest.mark.parametrize(("message", "error"), [
    (f"headline\n{FORGED}\n\n{LEGACY}", "2 metadata blocks"),  # what a forged headline made with the old writer
    (f"{LEGACY}\n{FORGED}\n", "2 metadata blocks"),
    (f"{LEGACY}{BEGIN}\n", "2 metadata blocks"),
    (f"{LEGACY}and more text\n", "text after the metadata block"),
    (f"x\n{END}\n{{}}\n{BEGIN}\n", "end marker comes before"),
    (f"x\n{BEGIN}\nnot json\n{END}\n", "not valid JSON"),
    (f"x\n{BEGIN}\n[1]\n{END}\n", "not a JSON object"),
    (f"x\n{BEGIN}\n{{\"format\": \"mlops.registry/2\"}}\n{END}\n", "is not mlops.registry/1"),
    (LEGACY.replace(SHA, "../../etc/passwd"), "key 'model_sha256' must be a sha256"),
    (LEGACY.replace('"v1.0.0"', '"v1.0.0\\n"'), "key 'version' must be a version"),
    (LEGACY.replace('"0000', '"0f/etc/hostname'), "key 'dvc_md5' must be a DVC md5"),
    (LEGACY.replace(f'"{"c" * 40}"', '"main"'), "key 'commit' must be a commit id"),
    (LEGACY.replace('{"test.roc_auc": 0.85}', "[0.85]"), "key 'metrics' must be an object"),
])
def test_malformed_blocks_are_refused_naming_the_problem(message: str, error: str) -> None:
    with pytest.raises(TagMetaInvalid, match=error) as info:
        tagmeta.read(message, "tag churn-model@v1.0.0")
    assert info.value.message.startswith("tag churn-model@v1.0.0: ")


def test_one_line() -> None:
    assert tagmeta.one_line("a\n\tb\r\nc\x00d\u2029e\u200bf") == "a b c d e f"
    assert len(tagmeta.one_line("x" * 1000)) == tagmeta.HEADLINE_MAX
