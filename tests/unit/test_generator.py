"""Generator contract on tiny random LLMs (exporters.tiny: Llama-3-layout NaVILA llm/, Qwen2 from the StreamVLN config).

Reference = manual greedy: full forward over the complete inputs_embeds (no cache), argmax, append, repeat."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from engines.vlm.generator import (
    IMAGE_TOKEN_INDEX,
    GenerationRequest,
    TransformersGenerator,
    TransformersSession,
    fake_prompt_ids,
    splice_layout,
    validate_request,
)

TPI = 5  # tokens per image (196 in the real models; small keeps the test fast)


@pytest.fixture(scope="module")
def llama(tiny):
    return TransformersGenerator(tiny["navila"] / "llm", dtype="float32")  # loaded from the folder


@pytest.fixture(scope="module")
def qwen2(tiny):
    cfg = json.loads((tiny["streamvln"] / "config.json").read_text())
    keys = (
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "max_position_embeddings",
        "rope_theta",
        "rms_norm_eps",
    )
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**{k: cfg[k] for k in keys}))
    return TransformersGenerator(model, dtype="float32")  # built from the config


def make_request(gen, n_images=3, stop_ids=(10_000_000,), max_new_tokens=8, seed=0):
    rng = np.random.default_rng(seed)
    vocab = gen.model.config.vocab_size
    text = rng.integers(0, vocab, size=12).tolist()
    ids = text[:3] + [IMAGE_TOKEN_INDEX] + text[3:5]
    for _ in range(n_images - 1):
        ids += [IMAGE_TOKEN_INDEX] + text[5:7]
    ids += text[7:]
    embeds = rng.normal(0, 1, size=(n_images, TPI, gen.hidden_size)).astype(np.float32)
    return GenerationRequest(ids, embeds, tuple(stop_ids), max_new_tokens)


def manual_embeds(gen, req):
    """Independent splice: walk the prompt, append a token embedding or the next image's rows."""
    emb, rows, k = gen.model.get_input_embeddings(), [], 0
    for t in req.prompt_ids:
        if t == IMAGE_TOKEN_INDEX:
            rows.append(torch.as_tensor(req.image_embeds[k]))
            k += 1
        else:
            rows.append(emb(torch.tensor([t]))[0:1].detach())
    return torch.cat(rows)[None]


def manual_greedy(gen, req, n):
    x, out = manual_embeds(gen, req), []
    with torch.inference_mode():
        for _ in range(n):
            tok = int(gen.model(inputs_embeds=x, use_cache=False).logits[0, -1].argmax())
            out.append(tok)
            x = torch.cat([x, gen.model.get_input_embeddings()(torch.tensor([[tok]]))], dim=1)
    return out


@pytest.mark.parametrize("name", ["llama", "qwen2"])
def test_greedy_matches_manual_full_forward(name, request):
    gen = request.getfixturevalue(name)
    req = make_request(gen)
    res = gen.generate(req)
    assert res.tokens == manual_greedy(gen, req, req.max_new_tokens)
    assert res.stop_reason == "length" and len(res.tokens) == req.max_new_tokens
    assert res.n_prompt_tokens == len(req.prompt_ids) - 3 + 3 * TPI
    assert res.prefill_s > 0 and res.decode_s >= 0


@pytest.mark.parametrize("name", ["llama", "qwen2"])
def test_stop_id_honoured(name, request):
    gen = request.getfixturevalue(name)
    free = gen.generate(make_request(gen, max_new_tokens=6)).tokens
    stop = free[3]
    res = gen.generate(make_request(gen, stop_ids=(12345678, stop), max_new_tokens=6))
    assert res.tokens == free[: free.index(stop)]
    assert stop not in res.tokens and res.stop_reason == "stop"
    assert res.stop_id == stop  # the id that ended generation, not the first of stop_ids
    assert gen.generate(make_request(gen, max_new_tokens=6)).stop_id is None  # "length": no stop id


def test_max_new_tokens_honoured(llama):
    for n in (1, 3):
        res = llama.generate(make_request(llama, max_new_tokens=n))
        assert len(res.tokens) == n and res.stop_reason == "length"


def test_mismatched_placeholders_rejected(llama):
    req = make_request(llama, n_images=3)
    bad = GenerationRequest(req.prompt_ids, req.image_embeds[:2], req.stop_ids, req.max_new_tokens)
    with pytest.raises(ValueError, match="3 image placeholders .* 2 images"):
        llama.generate(bad)
    wrong_h = GenerationRequest(req.prompt_ids, np.zeros((3, TPI, 7), np.float32), req.stop_ids, 4)
    with pytest.raises(ValueError, match="hidden size 7 != model hidden size 64"):
        llama.generate(wrong_h)
    with pytest.raises(ValueError, match="image_embeds must be"):
        validate_request(GenerationRequest(req.prompt_ids, np.zeros((3, TPI)), (1,), 4))
    with pytest.raises(ValueError, match="max_new_tokens"):
        validate_request(GenerationRequest(req.prompt_ids, req.image_embeds, (1,), 0))


def test_fake_ids_layout():
    vocab, h = 1000, 4
    embeds = np.arange(2 * 3 * h, dtype=np.float32).reshape(2, 3, h)
    req = GenerationRequest([7, IMAGE_TOKEN_INDEX, 8, 9, IMAGE_TOKEN_INDEX, 5], embeds, (2,), 4)
    ids, table = fake_prompt_ids(req, vocab)
    assert ids.dtype == np.int32
    assert ids.tolist() == [7, 1000, 1001, 1002, 8, 9, 1003, 1004, 1005, 5]
    assert table.shape == (1, 6, h)
    np.testing.assert_array_equal(table[0, 3], embeds[1, 0])  # fake id 1003 → image 1, row 0


@pytest.mark.parametrize("name", ["llama", "qwen2"])
def test_transformers_and_fake_id_layout_agree(name, request):
    """Each position holding fake id vocab+r in the TRT-LLM input gets prompt-table row r; the transformers splice
    puts exactly that row at that position (and the token embedding everywhere else)."""
    gen = request.getfixturevalue(name)
    req = make_request(gen, n_images=3)
    vocab = gen.model.config.vocab_size
    ids, table = fake_prompt_ids(req, vocab)
    x = gen.inputs_embeds(req)[0].detach().numpy()
    assert x.shape[0] == len(ids) == req.n_prompt_tokens
    image_pos = np.flatnonzero(ids >= vocab)
    assert len(image_pos) == 3 * TPI
    np.testing.assert_array_equal(x[image_pos], table[0, ids[image_pos] - vocab])
    text_pos = np.flatnonzero(ids < vocab)
    tok = gen.model.get_input_embeddings()(torch.as_tensor(ids[text_pos], dtype=torch.long)).detach().numpy()
    np.testing.assert_array_equal(x[text_pos], tok)
    # and the independent manual splice gives the same matrix
    np.testing.assert_array_equal(x, manual_embeds(gen, req)[0].numpy())


def test_splice_layout_rows_in_order():
    ids, rows = splice_layout([1, IMAGE_TOKEN_INDEX, IMAGE_TOKEN_INDEX, 2], 2)
    assert ids.tolist() == [1, -1, -1, -1, -1, 2]
    assert rows.tolist() == [-1, 0, 1, 2, 3, -1]


@pytest.mark.parametrize("name", ["llama", "qwen2"])
def test_session_reuses_kv_with_the_same_tokens(name, request):
    """Multi-turn: each request = previous request + its output + a stop id + a new turn with one more image. The
    session prefills only the new positions and decodes exactly what a fresh full prefill decodes."""
    gen = request.getfixturevalue(name)
    session = TransformersSession(gen)
    rng = np.random.default_rng(1)
    vocab = gen.model.config.vocab_size
    ids, embeds, stop, prev = [], [], vocab - 1, None
    for turn in range(3):
        ids += rng.integers(0, vocab - 1, size=4).tolist() + [IMAGE_TOKEN_INDEX] + [5, 6]
        embeds.append(rng.normal(0, 1, size=(1, TPI, gen.hidden_size)).astype(np.float32))
        req = GenerationRequest(list(ids), np.concatenate(embeds), (stop,), 3 + turn % 2)
        got, want = session.generate(req), gen.generate(req)
        assert got.tokens == want.tokens and got.n_prompt_tokens == want.n_prompt_tokens
        if prev is None:
            assert got.n_cached_tokens == 0
        else:  # cached: the previous prompt + the generated tokens that went through the model
            fed = len(prev.tokens) - (prev.stop_reason == "length")
            assert got.n_cached_tokens == prev.n_prompt_tokens + fed
        assert got.n_prefilled == got.n_prompt_tokens - got.n_cached_tokens and want.n_cached_tokens == 0
        ids += got.tokens + [stop]
        prev = got
    # a request that does not extend the cached one starts over
    other = make_request(gen)
    assert session.generate(other).n_cached_tokens == 0
    assert session.generate(other).tokens == gen.generate(other).tokens


@pytest.mark.parametrize("name", ["llama", "qwen2"])
def test_batch_gives_the_tokens_of_each_request_alone(name, request):
    """Left-padded batch of prompts of different lengths, one row stopping early on its stop id, one cut by its own
    max_new_tokens: each row's tokens and stop reason are those of the request decoded alone."""
    gen = request.getfixturevalue(name)
    reqs = [make_request(gen, n_images=n, seed=n, max_new_tokens=8) for n in (1, 3, 5)]
    free = gen.generate(reqs[1]).tokens
    reqs[1] = GenerationRequest(reqs[1].prompt_ids, reqs[1].image_embeds, (free[2],), 8)  # stops after 2 tokens
    reqs[2] = GenerationRequest(reqs[2].prompt_ids, reqs[2].image_embeds, reqs[2].stop_ids, 3)
    alone = [gen.generate(r) for r in reqs]
    batch = gen.generate_batch(reqs)
    assert [b.tokens for b in batch] == [a.tokens for a in alone]
    assert [b.stop_reason for b in batch] == [a.stop_reason for a in alone] == ["length", "stop", "length"]
    assert [b.stop_id for b in batch] == [a.stop_id for a in alone] == [None, free[2], None]
    assert [b.n_prompt_tokens for b in batch] == [a.n_prompt_tokens for a in alone]
    assert len(batch[1].tokens) == free.index(free[2]) and len(batch[2].tokens) == 3
    assert gen.generate_batch(reqs[:1])[0].tokens == alone[0].tokens and gen.generate_batch([]) == []
