"""The original Forgather's ``inf server`` and ``inf client`` options, on a tiny real
Llama: one ``inf server`` process started from a YAML file of options (plus
short options on the command line), one in-process server for the client's
options (run through ``forgather.cli.main``), and the server's sampling
additions (repetition penalty, no-repeat n-grams, min length, echo, stop
sequences, no KV cache) checked against ``generate()``."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request

import openai
import pytest
import torch

from forgather.cli.inference import add_parser, apply_config_file
from forgather.cli.main import main
from forgather.serve import ServerThread, load_for_serving, wrap_model
from forgather.serve.sampling import SamplingParams, choose_tokens, make_generator
from forgather.serve.server import free_port
from tests.serve.tiny_model import build_tiny_llama

PROMPT = "def"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    return build_tiny_llama(str(tmp_path_factory.mktemp("models") / "tiny"), layers=1)


@pytest.fixture(scope="module")
def loaded(model_dir):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_for_serving(model_dir)
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def server(loaded):
    model, tokenizer = loaded
    served = wrap_model(model, tokenizer, "tiny", stop_sequences=["<|pad|>"])
    with ServerThread(served) as running:
        yield running


@pytest.fixture
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="-", max_retries=0)


def _generate(loaded, prompt_ids: list[int], n: int, **options) -> list[int]:
    model, tokenizer = loaded
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt_ids]), max_new_tokens=n, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id, **options)  # fmt: skip
    return out[0, len(prompt_ids) :].tolist()


def _completion(client, **options):
    return client.completions.create(model="tiny", prompt=PROMPT, temperature=0, **options)


# -- the server's sampling: the options the original's client sends ------------------------


def test_repetition_penalty_matches_generate(client, loaded):
    _, tokenizer = loaded
    ids = tokenizer(PROMPT)["input_ids"]
    expected = _generate(loaded, ids, 12, repetition_penalty=1.5)
    assert expected != _generate(loaded, ids, 12)  # the penalty changes this continuation
    got = _completion(client, max_tokens=12, extra_body={"repetition_penalty": 1.5})
    assert got.choices[0].text == tokenizer.decode(expected, skip_special_tokens=True)


def test_no_repeat_ngram_size_matches_generate(client, loaded):
    _, tokenizer = loaded
    prompt = "x = x = x = x"
    ids = tokenizer(prompt)["input_ids"]
    plain = _generate(loaded, ids, 16)
    for n in (1, 2):  # the prompt repeats 2-grams; the tiny model's text repeats tokens
        expected = _generate(loaded, ids, 16, no_repeat_ngram_size=n)
        if n == 1:
            assert expected != plain  # the ban changes this continuation
        got = client.completions.create(model="tiny", prompt=prompt, temperature=0, max_tokens=16,
                                        extra_body={"no_repeat_ngram_size": n})  # fmt: skip
        assert got.choices[0].text == tokenizer.decode(expected, skip_special_tokens=True), n


def test_min_length_keeps_stop_tokens_out():
    logits = torch.tensor([[0.0, 5.0, 1.0]])  # token 1 (the stop token) is by far the best
    params = SamplingParams(max_tokens=8, temperature=0, stop_token_ids=(1,), min_tokens=2)
    generator = [make_generator(0, torch.device("cpu"))]
    assert choose_tokens(logits, [params], generator, [[0]], [1])[0].token_id == 2
    assert choose_tokens(logits, [params], generator, [[0]], [2])[0].token_id == 1


def test_min_length_reaches_the_server(client, loaded):
    _, tokenizer = loaded
    # ignore_eos-free request whose min_length (prompt + answer, as generate()) forbids EOS early
    got = _completion(client, max_tokens=6, extra_body={"min_length": 7})
    assert got.usage.completion_tokens == 6  # could not stop before prompt (1) + 6


def test_num_beams_is_refused_naming_it(client):
    with pytest.raises(openai.BadRequestError) as info:
        _completion(client, max_tokens=4, extra_body={"num_beams": 3})
    assert info.value.body["param"] == "num_beams" and "beam search" in info.value.body["message"]


def test_echo_puts_the_prompt_first(client):
    plain = _completion(client, max_tokens=5).choices[0].text
    assert _completion(client, max_tokens=5, echo=True).choices[0].text == PROMPT + plain
    chunks = _completion(client, max_tokens=5, echo=True, stream=True)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == PROMPT + plain


def test_server_stop_sequence_that_is_a_special_token_stops(server, loaded):
    _, tokenizer = loaded
    assert tokenizer.convert_tokens_to_ids("<|pad|>") in server.served.stop_token_ids


def test_no_kv_cache_gives_the_same_text_without_a_cache(loaded):
    model, tokenizer = loaded
    caches = []
    hook = model.register_forward_pre_hook(
        lambda module, args, kwargs: caches.append(kwargs.get("use_cache")), with_kwargs=True
    )
    served = wrap_model(model, tokenizer, "tiny", use_cache=False)
    served.scheduler.start()
    try:
        [(text, _, _)] = served.scheduler.generate(
            [tokenizer(PROMPT)["input_ids"]], SamplingParams(max_tokens=6, temperature=0)
        )
    finally:
        served.scheduler.stop()
        hook.remove()
    expected = _generate(loaded, tokenizer(PROMPT)["input_ids"], 6)
    assert text == tokenizer.decode(expected, skip_special_tokens=True)
    assert caches and set(caches) == {False}


# -- inf client options, through the CLI's own entry point ---------------------------------


def _client_cli(capfd, server, *args: str) -> tuple[int, str, str]:
    capfd.readouterr()
    rc = main(["inf", "client", "--url", server.url + "/v1", *args])
    out, err = capfd.readouterr()
    return rc, out, err


def test_client_health(capfd, server):
    rc, out, _ = _client_cli(capfd, server, "--health")
    assert rc == 0 and "healthy" in out and "tiny" in out
    assert main(["inf", "client", "--url", f"http://127.0.0.1:{free_port()}", "--health"]) == 1
    assert "cannot reach" in capfd.readouterr().err


def test_client_list_models(capfd, server):
    rc, out, err = _client_cli(capfd, server, "--list-models")
    assert (rc, out) == (0, "tiny\n"), err


def test_client_echo_and_no_echo(capfd, server):
    plain = _client_cli(capfd, server, "--completion", PROMPT, "--temperature", "0",
                        "--max-tokens", "4", "--no-echo")[1]  # fmt: skip
    echoed = _client_cli(capfd, server, "--completion", PROMPT, "--temperature", "0",
                         "--max-tokens", "4", "--echo")[1]  # fmt: skip
    assert echoed == PROMPT + plain


def test_client_show_usage_when_streaming_and_not(capfd, server):
    for stream in ("--stream", "--no-stream"):
        out = _client_cli(capfd, server, "--message", "hi", "--max-tokens", "3", "--show-usage",
                          stream)[1]  # fmt: skip
        assert " prompt + " in out and "completion tokens]" in out
    assert " prompt + " not in _client_cli(capfd, server, "--message", "hi", "--max-tokens", "3")[1]


def test_client_stream_prints_the_answer(capfd, server):
    streamed = _client_cli(capfd, server, "--message", "hi", "--max-tokens", "4", "--seed", "3",
                           "--temperature", "0", "--stream")[1]  # fmt: skip
    whole = _client_cli(capfd, server, "--message", "hi", "--max-tokens", "4", "--seed", "3",
                        "--temperature", "0", "--no-stream")[1]  # fmt: skip
    assert streamed == whole and streamed.strip()


def test_client_repetition_penalty_and_no_repeat_ngram_reach_the_server(capfd, server, loaded):
    _, tokenizer = loaded
    ids = tokenizer(PROMPT)["input_ids"]
    for option, value, hf in (("--repetition-penalty", "1.5", "repetition_penalty"),
                              ("--no-repeat-ngram-size", "1", "no_repeat_ngram_size")):  # fmt: skip
        expected = _generate(loaded, ids, 12, **{hf: float(value) if "." in value else int(value)})
        assert expected != _generate(loaded, ids, 12), option
        out = _client_cli(capfd, server, "--completion", PROMPT, "--no-echo", "--temperature",
                          "0", "--max-tokens", "12", option, value)[1]  # fmt: skip
        assert out == tokenizer.decode(expected, skip_special_tokens=True) + "\n", option


def test_client_min_length(capfd, server):
    rc, out, _ = _client_cli(capfd, server, "--completion", PROMPT, "--no-stream", "--show-usage",
                             "--max-tokens", "5", "--min-length", "6")  # fmt: skip
    assert rc == 0 and "+ 5 completion tokens]" in out


def test_client_num_beams_is_a_clear_error(capfd, server):
    rc, _, err = _client_cli(capfd, server, "--completion", PROMPT, "--num-beams", "2")
    assert rc == 1 and "400" in err and "num_beams" in err


def test_client_interactive_after_a_message(capfd, server, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("and then\n/quit\n"))
    rc, out, _ = _client_cli(capfd, server, "--message", "hi", "--max-tokens", "2",
                             "--interactive")  # fmt: skip
    assert rc == 0 and "chatting with tiny" in out


def test_client_config_file_and_command_line_wins(capfd, server, tmp_path):
    config = tmp_path / "client.yaml"
    config.write_text(f"url: {server.url}/v1\nmax-tokens: 3\nno_echo: true\ntemperature: 0\n"
                      "list-models: true\n")  # fmt: skip
    capfd.readouterr()
    assert main(["inf", "client", str(config)]) == 0
    assert capfd.readouterr().out == "tiny\n"
    (tmp_path / "bad.yaml").write_text("colour: blue\n")
    assert main(["inf", "client", str(tmp_path / "bad.yaml")]) == 1
    assert "unknown option 'colour'" in capfd.readouterr().err


@pytest.mark.parametrize(
    "command, line, message",
    [
        ("server", "max-batch-size: lots", "max-batch-size: invalid value 'lots'"),
        ("server", "port: notaport", "port: invalid value 'notaport'"),
        ("server", "attn-implementation: fast", "attn-implementation: invalid choice 'fast'"),
        ("client", "max-tokens: [1, 2]", "max-tokens: expected one value"),
        ("client", "list-models: yes please", "list-models: expected true or false"),
    ],
)
def test_a_config_file_value_is_checked_as_the_command_line_is(capfd, tmp_path, command, line,
                                                                 message):  # fmt: skip
    config = tmp_path / "bad.yaml"
    config.write_text(line + "\n")
    assert main(["inf", command, str(config)]) == 1
    assert f"{config}: {message}" in capfd.readouterr().err


# The original's tutorial file (examples/tutorials/tiny_llama/tiny_llama_server.yaml), verbatim.
TUTORIAL_SERVER_YAML = """\
model: "./output_models/tiny_llama/"
from-checkpoint: True
device: "cuda:0"
dtype: "float32"
host: "127.0.0.1"
port: 8000
log-level: "INFO"
chat-template: "../../../chat_templates/narrative_chat.jinja"
stop-sequences:
  - "The end"
  - "The End"
  - "THE END"
"""


def _merged(tmp_path, text: str, *argv: str) -> argparse.Namespace:
    """``inf ARGV`` parsed as ``forgather`` parses it, with ``text`` as its YAML file merged in."""
    (tmp_path / "options.yaml").write_text(text)
    parser = argparse.ArgumentParser(prog="forgather")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["inf", argv[0], str(tmp_path / "options.yaml"), *argv[1:]])
    apply_config_file(args)
    return args


def test_the_originals_tutorial_server_file_is_accepted(tmp_path):
    args = _merged(tmp_path, TUTORIAL_SERVER_YAML, "server")
    assert args.from_checkpoint is True  # as bare -c: the newest checkpoint
    assert (args.device, args.dtype, args.port, args.log_level) == ("cuda:0", "float32", 8000,
                                                                   "INFO")  # fmt: skip
    assert args.stop_sequences == ["The end", "The End", "THE END"]


@pytest.mark.parametrize(
    "value, expected",
    [("true", True), ("false", False), ("out/ckpt/checkpoint-5", "out/ckpt/checkpoint-5")],
)
def test_from_checkpoint_in_a_file_is_true_false_or_a_directory(tmp_path, value, expected):
    assert _merged(tmp_path, f"from-checkpoint: {value}\n", "server").from_checkpoint == expected


@pytest.mark.parametrize(
    "line, argv, dest, expected",
    [
        ("device: cuda:0", ("-d", "cpu"), "device", "cpu"),
        ("port: 9000", ("-p", "8000"), "port", 8000),
        ("host: 0.0.0.0", ("-H", "127.0.0.1"), "host", "127.0.0.1"),
        ("dtype: float32", ("-T", "auto"), "dtype", "auto"),
        ("log-level: WARNING", ("-l", "info"), "log_level", "info"),
        ("max-batch-size: 4", ("--max-batch-size", "16"), "max_batch_size", 16),
        ("stop-sequences: [x]", ("-s",), "stop_sequences", []),
        ("from-checkpoint: false", ("-c",), "from_checkpoint", True),
        ("from-checkpoint: true", ("-c", "ckpt"), "from_checkpoint", "ckpt"),
    ],
)
def test_a_command_line_option_wins_even_with_the_default_value(tmp_path, line, argv, dest,
                                                                 expected):  # fmt: skip
    args = _merged(tmp_path, line + "\n", "server", *argv)
    assert getattr(args, dest) == expected


def test_a_client_command_line_option_wins_even_with_the_default_value(tmp_path):
    args = _merged(tmp_path, "url: http://127.0.0.1:9/v1\nmax-tokens: 3\n", "client",
                   "--url", "http://127.0.0.1:8000")  # fmt: skip
    assert (args.url, args.max_tokens) == ("http://127.0.0.1:8000", 3)


def test_server_d_cpu_overrides_a_files_cuda_device(capfd, tmp_path):
    """The tutorial file with ``-d cpu`` on a machine without CUDA: no complaint about the
    device (nor from-checkpoint); it gets as far as looking for the model."""
    (tmp_path / "server.yaml").write_text(
        TUTORIAL_SERVER_YAML.replace("./output_models/tiny_llama/", str(tmp_path / "none"))
    )
    capfd.readouterr()
    assert main(["inf", "server", str(tmp_path / "server.yaml"), "-d", "cpu", "-p", "0"]) == 1
    err = capfd.readouterr().err
    assert "is not a model directory" in err and "device" not in err


# -- inf server options: one process from a YAML file plus short options ----------------------


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def test_server_options_from_a_config_file_and_short_flags(model_dir, loaded, tmp_path):
    _, tokenizer = loaded
    root = tmp_path / "tiny"
    shutil.copytree(model_dir, root)
    checkpoint = root / "saved" / "checkpoint-5"  # -c PATH: this one, not a newest search
    checkpoint.mkdir(parents=True)
    shutil.copy(root / "model.safetensors", checkpoint / "model.safetensors")
    (tmp_path / "chat.jinja").write_text("{% for m in messages %}[{{ m['content'] }}]{% endfor %}")
    plain = tokenizer.decode(_generate(loaded, tokenizer(PROMPT)["input_ids"], 8),
                             skip_special_tokens=True)  # fmt: skip
    stop = plain[3:6]
    assert stop and stop in plain
    port = free_port()
    (tmp_path / "server.yaml").write_text(
        f"model: {root}\nport: 1\ndevice: cpu\nlog-level: WARNING\ndisable-kv-cache: true\n"
        f"stop-sequences: [{json.dumps(stop)}]\nchat_template: {tmp_path / 'chat.jinja'}\n"
    )
    log = open(tmp_path / "server.log", "w+")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "forgather.cli", "inf", "server", str(tmp_path / "server.yaml"),
         "-p", str(port), "-H", "127.0.0.1", "-d", "cpu", "-a", "eager", "-T", "double",
         "-c", str(checkpoint), "--cache-implementation", "dynamic"],
        env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}, stderr=log,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                _get(url + "/health")
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "server.log").read_text()
                import time

                time.sleep(0.1)
        (card,) = _get(url + "/v1/models")["data"]
        assert card["root"] == str(checkpoint)  # -c PATH
        client = openai.OpenAI(base_url=url + "/v1", api_key="-", max_retries=0)
        text = client.completions.create(prompt=PROMPT, model="tiny", temperature=0,
                                         max_tokens=8).choices[0].text  # fmt: skip
        assert text == plain[: plain.index(stop)]  # -s from the file, as a stop string
        chat = client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=1
        )
        assert chat.usage.prompt_tokens == len(tokenizer("[hi]")["input_ids"])  # -t template
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
        log.seek(0)
        stderr = log.read()
        log.close()
    assert "(step 5)" in stderr
    assert "torch.float64 on cpu" in stderr  # -T double, -d cpu
    assert "attention eager" in stderr  # -a
    assert "no KV cache (--disable-kv-cache)" in stderr
    assert "Uvicorn running" not in stderr  # -l WARNING (from the file, any case)


def test_server_refuses_a_cache_implementation_it_does_not_have(model_dir):
    rc = main(["inf", "server", "-m", model_dir, "--cache-implementation", "static"])
    assert rc == 1


def _compiled(model_dir):
    from forgather.serve.loading import LoadedModel
    from forgather.serve.server import ServerSettings, _wrap_loaded

    model, tokenizer = load_for_serving(model_dir)  # its own copy: compiling patches forward
    settings = ServerSettings(model_path=model_dir, compile=True,
                              compile_args={"backend": "eager", "dynamic": True})  # fmt: skip
    return _wrap_loaded(LoadedModel(model, tokenizer, model_dir), settings), model, tokenizer


def test_server_compile_wraps_the_forward(model_dir):
    _, model, _ = _compiled(model_dir)
    assert hasattr(model.forward, "_torchdynamo_orig_callable")  # compiled lazily, on first call
