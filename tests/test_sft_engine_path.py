"""`tunegate train` through tunegate's engine on CPU, and `--gpus N` through accelerate's launcher.

- `sft.engine: tunegate` trains through the CLI and registers a candidate that loads and predicts,
  with the engine, its steps and the validation loss in the lineage;
- `--gpus 2` with TUNEGATE_DISTRIBUTED_CPU=1 runs two gloo processes under `accelerate launch`,
  registers exactly one version, and its adapter equals a one-process engine run's within 1e-4;
- `--gpus 2` without CUDA (and without the test variable), and `--gpus` on a classifier, fail
  naming the flag; a rank that fails turns into one error naming it;
- which path trains what (`choose_engine`): the CPU example (support-voice) stays on TRL.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from rich.console import Console

from sft_tiny import conversation, save_tiny_base, write_chat_jsonl
from tunegate.errors import TrainError
from tunegate.pipeline_sft import predict_chat_file, train_sft_step
from tunegate.spec import load_spec
from tunegate.spec.sft import SftSpec
from tunegate.store import open_store
from tunegate.train.sft_engine import choose_engine, read_base_config
from tunegate.train.sft_launch import CPU_ENV

REPO = Path(__file__).resolve().parents[1]

SPEC = """\
name: tiny-engine
task: sft
base_model: base
data: {train: train.jsonl, test: test.jsonl, pii: false, blockers: [leakage]}
sft: {engine: tunegate, epochs: 2, batch_size: 4, eval_steps: 4, learning_rate: 0.003, max_length: 128,
      validation_fraction: 0.2, lora: {r: 4, alpha: 8, dropout: 0.0}}
generation: {max_new_tokens: 6, batch_size: 4, latency_requests: 3}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("sft-engine")
    save_tiny_base(root / "base")
    write_chat_jsonl(root / "train.jsonl", [conversation(i) for i in range(24)])
    write_chat_jsonl(root / "test.jsonl", [conversation(i) for i in range(200, 204)])
    (root / "tunegate.yaml").write_text(SPEC)
    return root


def _tunegate(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    """The CLI in this process (no interpreter start-up): exit code and everything it printed."""
    from tunegate.cli import main

    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # main() sets it; keep it from leaking out of the test
    monkeypatch.setattr(sys, "argv", ["tunegate", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out + out.err


def _adapter(store, version) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    folder = store.artifacts.get_tree(version.artifact_sha256)
    return load_file(str(folder / "adapter" / "adapter_model.safetensors"))


def test_engine_trains_through_tunegate_train_and_the_version_predicts(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _tunegate(monkeypatch, capsys, "train", str(project), "--workspace", str(tmp_path / "ws"))
    assert code == 0, out
    assert "training path: tunegate (sft.engine is tunegate)" in out

    store = open_store(tmp_path / "ws")
    version = store.meta.resolve("tiny-engine")
    assert version.stage == "candidate"
    lineage = version.lineage
    assert lineage["engine"]["name"] == "tunegate" and lineage["engine"]["processes"] == 1
    assert lineage["engine"]["memory_plan"] is None  # plans are for GPUs; CPU runs eagerly
    assert lineage["final_eval_loss"] is not None and lineage["final_train_loss"] is not None
    folder = store.artifacts.get_tree(version.artifact_sha256)
    history = json.loads((folder / "training-log.json").read_text())
    assert [h["step"] for h in history if "loss" in h] == list(range(1, lineage["steps"] + 1))
    assert any("eval_loss" in h for h in history)
    consumed = json.loads((folder / "consumed-examples.json").read_text())
    assert len(consumed) == lineage["steps"]
    seen = {i for ids in consumed.values() for i in ids}
    assert len(seen) == 24 - lineage["validation_examples"]

    assert any(float(t.abs().max()) > 0 for k, t in _adapter(store, version).items() if "lora_B" in k)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": "a", "prompt": "Tell me about the tide."}) + "\n")
    rows = predict_chat_file(store, "tiny-engine", prompts, None, Console(quiet=True), max_new_tokens=4)
    assert rows[0]["model"] == version.ref and rows[0]["completion_tokens"] <= 4


def test_full_fine_tuning_through_the_engine_saves_every_weight(project: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    spec = project / "full.yaml"
    spec.write_text(
        SPEC.replace("name: tiny-engine", "name: tiny-full").replace("sft: {", "sft: {method: full, ")
    )
    store = open_store(tmp_path / "ws")
    version = train_sft_step(load_spec(spec), store, Console(quiet=True))
    assert version.lineage["engine"]["name"] == "tunegate" and version.lineage["method"] == "full"
    folder = store.artifacts.get_tree(version.artifact_sha256)
    trained = load_file(str(folder / "model" / "model.safetensors"))
    base = load_file(str(project / "base" / "model.safetensors"))
    assert trained.keys() == base.keys()
    assert all(
        not torch.equal(trained[k], base[k]) for k in base
    )  # q/k/v and gate/up too (fused in training)


def test_two_processes_through_accelerate_register_one_version_equal_to_one_process(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store(tmp_path / "ws")
    single = train_sft_step(load_spec(project), store, Console(quiet=True))

    monkeypatch.setenv(CPU_ENV, "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    code, out = _tunegate(
        monkeypatch, capsys, "train", str(project), "--workspace", str(tmp_path / "ws"), "--gpus", "2"
    )
    assert code == 0, out
    versions = store.meta.list_versions("tiny-engine")
    assert [v.version for v in versions] == sorted([single.version, single.version + 1])
    launched = store.meta.resolve(f"tiny-engine@{single.version + 1}")
    assert launched.lineage["engine"]["processes"] == 2
    assert launched.lineage["steps"] == single.lineage["steps"]

    one, two = _adapter(store, single), _adapter(store, launched)
    assert one.keys() == two.keys() and len(one) == 2 * 7 * 2
    assert all(float(t.abs().max()) > 0 for k, t in two.items() if "lora_B" in k)  # trained, not fresh
    for key in one:
        assert (one[key] - two[key]).abs().max() < 1e-4, key
    assert launched.lineage["final_eval_loss"] == pytest.approx(single.lineage["final_eval_loss"], abs=1e-5)


def test_gpus_without_cuda_or_on_a_classifier_fails_naming_the_flag(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if torch.cuda.device_count() >= 2:
        pytest.skip("this machine has the GPUs")
    monkeypatch.delenv(CPU_ENV, raising=False)
    code, out = _tunegate(
        monkeypatch, capsys, "train", str(project), "--workspace", str(tmp_path / "ws"), "--gpus", "2"
    )
    assert code == 2 and "--gpus 2 needs 2 CUDA devices" in out
    assert not open_store(tmp_path / "ws").meta.list_versions()

    classifier = tmp_path / "classify.yaml"
    classifier.write_text("name: clf\ntask: classify\ndata: {train: a.csv, test: b.csv}\n")
    code, out = _tunegate(
        monkeypatch, capsys, "train", str(classifier), "--workspace", str(tmp_path / "ws"), "--gpus", "1"
    )
    assert code == 2 and "--gpus applies to task sft" in out
    # tunegate run takes --gpus too, and checks it before the data check starts.
    code, out = _tunegate(
        monkeypatch, capsys, "run", str(project), "--workspace", str(tmp_path / "ws"), "--gpus", "2"
    )
    assert code == 2 and "--gpus 2 needs 2 CUDA devices" in out
    code, out = _tunegate(
        monkeypatch, capsys, "run", str(classifier), "--workspace", str(tmp_path / "ws"), "--gpus", "1"
    )
    assert code == 2 and "--gpus applies to task sft" in out


def test_a_failing_rank_is_one_error_naming_it(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import accelerate.commands.launch
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    from tunegate.train.sft_launch import launch_sft_training

    def rank_one_fails(args: object) -> None:
        raise ChildFailedError(
            "tunegate.train.sft_launch", {1: ProcessFailure(1, 4242, 2, str(tmp_path / "none"))}
        )

    monkeypatch.setenv(CPU_ENV, "1")
    monkeypatch.setattr(accelerate.commands.launch, "launch_command", rank_one_fails)
    store = open_store(tmp_path / "ws")
    with pytest.raises(TrainError, match=r"--gpus 2: training failed in rank 1 \(exit code 2\)"):
        launch_sft_training(load_spec(project), store, Console(quiet=True), 2)
    assert not store.meta.list_versions()


def test_which_path_trains_what(project: Path) -> None:
    tiny = read_base_config(project / "base")
    lora0 = {"lora": {"dropout": 0.0}}
    # auto: the engine only with CUDA, and only for what it accepts; else TRL with the reason.
    assert choose_engine(SftSpec(**lora0), tiny, resume=False, cuda=False).name == "trl"
    assert choose_engine(SftSpec(**lora0), tiny, resume=False, cuda=True).name == "tunegate"
    assert choose_engine(SftSpec(), tiny, resume=False, cuda=True).name == "tunegate"  # default dropout 0
    fallback = choose_engine(SftSpec(lora={"dropout": 0.05}), tiny, resume=False, cuda=True)
    assert fallback.name == "trl" and "sft.lora.dropout" in fallback.reason
    assert choose_engine(SftSpec(**lora0), tiny, resume=True, cuda=True).name == "trl"
    # tunegate: refusals are errors naming the key.
    with pytest.raises(TrainError, match=r"sft\.lora\.top_layers"):
        choose_engine(
            SftSpec(engine="tunegate", lora={"dropout": 0.0, "top_layers": 1}), tiny, resume=False, cuda=False
        )
    with pytest.raises(TrainError, match="--resume"):
        choose_engine(SftSpec(engine="tunegate", **lora0), tiny, resume=True, cuda=False)
    # several processes need the engine.
    with pytest.raises(TrainError, match=r"sft\.engine is 'trl'"):
        choose_engine(SftSpec(engine="trl", **lora0), tiny, resume=False, cuda=True, processes=2)
    with pytest.raises(TrainError, match=r"sft\.method full"):
        choose_engine(SftSpec(method="full"), tiny, resume=False, cuda=True, processes=2)

    # The CPU example keeps TRL's path, on a CPU and even on a GPU (top_layers, dropout).
    voice = load_spec(REPO / "examples" / "support-voice").spec.sft
    assert voice.engine == "auto"
    assert choose_engine(voice, tiny, resume=False, cuda=False).name == "trl"
    assert choose_engine(voice, tiny, resume=False, cuda=True).name == "trl"
