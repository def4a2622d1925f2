"""glam checkpoints in JAX on a GSPMD mesh: load a `glam train` checkpoint (parameters, Adafactor
statistics, step, tokenizer, options), shard it over a `jax.sharding.Mesh` with axes `data` × `mdl`
laid out as glam's `MeshTrainer` lays out its virtual mesh, train and evaluate with optax's
Adafactor configured as GLaM's, and write the state back as a glam checkpoint.

The model is the independent JAX decoder of the `glam_lm` golden fixtures
(Fixtures/model/make_glam_fixtures.py, with praxis' own top-2 gating); this module only adds the
placement. Layout (the "Sharding over TPU cores" article):

    batch rows, hence routing groups          split over data
    moe.wi [E, M, H]                          [data, -, mdl]
    moe.wo [E, H, M]                          [data, mdl, -]
    dispatched tokens / expert outputs        [E, G, C, M]: E over data (GShard's all-to-all)
    expert hidden units [E, G, C, H]          E over data, H over mdl
    every other weight                        replicated
    Adafactor statistics                      split like the dimension of their weight they keep

Nothing here is specific to CPUs: on a TPU or GPU host the same code shards over the real devices.
"""
import json
import os
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "Fixtures", "model"))
sys.path.insert(0, os.path.join(ROOT, "Fixtures"))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402

import make_glam_fixtures as decoder  # noqa: E402

MIN_DIM_SIZE_TO_FACTOR = 128


class CheckpointError(Exception):
    """A checkpoint this side cannot read or continue."""


# ----------------------------------------------------------------------------------------------
# Configuration and parameter names (the "Checkpoints and parameter names" article)

def model_config(config_json):
    """The decoder's config dict from a checkpoint's `config` metadata (absent keys take their documented defaults)."""
    raw = json.loads(config_json)
    c = {"moe_hidden_dim": raw.get("ff_dim"), "num_experts": 0, "expert_capacity": None, "capacity_factor": None,
         "num_groups": 1, "moe_activation": "gelu_tanh", "relative_buckets": 32, "relative_max_distance": 128,
         "attention_extra_logit": True, "rmsnorm_epsilon": 1e-6, "z_loss_weight": 1e-4, "aux_loss_weight": 0.01}
    c.update({k: v for k, v in raw.items() if v is not None or k in ("expert_capacity", "capacity_factor")})
    if c.get("moe_hidden_dim") is None:
        c["moe_hidden_dim"] = c["ff_dim"]
    return c


def is_expert_weight(name):
    return name.endswith(".moe.wi") or name.endswith(".moe.wo")


# ----------------------------------------------------------------------------------------------
# Adafactor: optax's, configured as GLaM's, and its statistics in glam's names

def learning_rate_schedule(options):
    """lr_t = peak · sqrt(N / max(t, N)) (lingvo's SqrtDecay; the "Training" article)."""
    peak, n = options["schedule"]["peak"], options["schedule"]["constantSteps"]
    return lambda t: peak * jnp.sqrt(n / jnp.maximum(jnp.asarray(t, jnp.float32), n))


def adafactor(options):
    """optax.adafactor with GLaM's settings: factored second moments (dimensions ≥ 128), decay
    1 − (t+1)^−0.8, ε1 = 1e-30, update clipping at RMS 1, parameter scale max(RMS(W), 1e-3), no momentum."""
    return optax.adafactor(learning_rate=learning_rate_schedule(options), min_dim_size_to_factor=MIN_DIM_SIZE_TO_FACTOR,
                           decay_rate=0.8, decay_offset=0, multiply_by_parameter_scale=True, clipping_threshold=1.0,
                           momentum=None, eps=1e-30, factored=True)


def glam_factored(shape):
    """glam factors a weight whose last two dimensions are both ≥ 128."""
    return len(shape) >= 2 and shape[-1] >= MIN_DIM_SIZE_TO_FACTOR and shape[-2] >= MIN_DIM_SIZE_TO_FACTOR


def optax_factored_dims(shape):
    """(d1, d0) as optax picks them: the second-largest and the largest dimension, or None."""
    if len(shape) < 2:
        return None
    order = np.argsort(shape)
    if shape[order[-2]] < MIN_DIM_SIZE_TO_FACTOR:
        return None
    return int(order[-2]), int(order[-1])


def check_factoring_agrees(shapes):
    """optax factors the two largest dimensions, glam the last two; refuse a model where that
    changes which weights are factored or which dimensions are."""
    for name, shape in shapes.items():
        dims = optax_factored_dims(shape)
        if (dims is not None) != glam_factored(shape) or (dims is not None and set(dims) != {len(shape) - 2, len(shape) - 1}):
            raise CheckpointError(f"{name} {list(shape)}: optax's Adafactor factors dimensions {dims}, glam the last two "
                                  f"({glam_factored(shape)}); their statistics would not correspond")


def _optax_rows_are_glam_rows(shape):
    """optax's v_row keeps dimension d1 (the second-largest) and averages over d0; glam's vr keeps the
    second-to-last. They coincide when d0 is the last dimension."""
    d1, d0 = optax_factored_dims(shape)
    return d0 == len(shape) - 1


def find_state(state, kind):
    """The FactoredState / ScaleByScheduleState inside optax.adafactor's chain state."""
    for part in jax.tree_util.tree_leaves(state, is_leaf=lambda x: isinstance(x, kind)):
        if isinstance(part, kind):
            return part
    raise CheckpointError(f"optax.adafactor's state has no {kind.__name__}")


def replace_counts(state, step):
    """Every step counter in optax's state set to `step`."""
    def fix(x):
        if hasattr(x, "_fields") and "count" in x._fields:
            return x._replace(count=jnp.asarray(step, jnp.int32))
        return x
    return jax.tree_util.tree_map(fix, state, is_leaf=lambda x: hasattr(x, "_fields") and "count" in x._fields)


def optimizer_state(tx, params, statistics, step):
    """optax's state for `params`, its statistics taken from glam's (`optimizer.<name>.vr/.vc/.v`) and its counters at `step`."""
    state = tx.init(params)
    factored = find_state(state, optax._src.factorized.FactoredState)
    v_row, v_col, v = dict(factored.v_row), dict(factored.v_col), dict(factored.v)
    for name, value in params.items():
        shape = value.shape
        if optax_factored_dims(shape) is not None:
            vr, vc = statistics.get(name + ".vr"), statistics.get(name + ".vc")
            if vr is None or vc is None:
                continue  # never updated: zeros, as glam starts
            rows, cols = (vr, vc) if _optax_rows_are_glam_rows(shape) else (vc, vr)
            if rows.shape != v_row[name].shape or cols.shape != v_col[name].shape:
                raise CheckpointError(f"optimizer statistics of {name} do not fit its shape {list(shape)}")
            v_row[name], v_col[name] = jnp.asarray(rows), jnp.asarray(cols)
        else:
            full = statistics.get(name + ".v")
            if full is None:
                continue
            if full.shape != shape:
                raise CheckpointError(f"optimizer statistic of {name} has shape {list(full.shape)}, not {list(shape)}")
            v[name] = jnp.asarray(full)
    new_factored = factored._replace(v_row=v_row, v_col=v_col, v=v)
    state = jax.tree_util.tree_map(lambda x: new_factored if isinstance(x, optax._src.factorized.FactoredState) else x, state,
                                   is_leaf=lambda x: isinstance(x, optax._src.factorized.FactoredState))
    return replace_counts(state, step)


def glam_statistics(state, params):
    """glam's `optimizer.<name>.vr/.vc/.v` tensors from optax's state."""
    factored = find_state(state, optax._src.factorized.FactoredState)
    out = {}
    for name, value in params.items():
        shape = value.shape
        if optax_factored_dims(shape) is not None:
            rows, cols = np.asarray(factored.v_row[name]), np.asarray(factored.v_col[name])
            vr, vc = (rows, cols) if _optax_rows_are_glam_rows(shape) else (cols, rows)
            out[f"optimizer.{name}.vr"], out[f"optimizer.{name}.vc"] = vr, vc
        else:
            out[f"optimizer.{name}.v"] = np.asarray(factored.v[name])
    return out


# ----------------------------------------------------------------------------------------------
# glam checkpoints: reading, checksums, writing

def _crc_shape(shape):
    return "[" + ", ".join(str(d) for d in shape) + "]"


def checksum(tensors, metadata):
    """glam's checkpoint checksum: CRC-32 (IEEE) over every tensor's `name|dtype|shape|` and bytes,
    then every other metadata entry `key=value\\n`, both in sorted order, as 8 hex digits."""
    crc = 0
    for name in sorted(tensors):
        array = tensors[name]
        dtype = {"float32": "F32", "int32": "I32"}[str(array.dtype)]
        crc = zlib.crc32(f"{name}|{dtype}|{_crc_shape(array.shape)}|".encode(), crc)
        crc = zlib.crc32(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes(), crc)
    for key in sorted(metadata):
        if key != "checksum":
            crc = zlib.crc32(f"{key}={metadata[key]}\n".encode(), crc)
    return f"{crc:08x}"


class GlamCheckpoint:
    """A `glam train` checkpoint: parameters, optimizer statistics, step and metadata."""

    def __init__(self, params, statistics, metadata):
        self.params, self.statistics, self.metadata = params, statistics, metadata
        self.config = model_config(metadata["config"])
        self.options = json.loads(metadata["training"])
        self.step = int(metadata["step"])
        self.skipped_steps = int(metadata["skipped_steps"])

    @classmethod
    def read(cls, path):
        try:
            with safe_open(path, "np") as f:
                metadata = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as error:  # safetensors raises several types
            raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None
        if metadata.get("format") != "glam-checkpoint":
            raise CheckpointError(f"{path}: not a glam training checkpoint (__metadata__ format is not glam-checkpoint)")
        if metadata.get("checksum") != checksum(tensors, metadata):
            raise CheckpointError(f"{path}: checksum mismatch (stored {metadata.get('checksum')}, computed "
                                  f"{checksum(tensors, metadata)}): the file is corrupt")
        params = {k: v.astype(np.float32) for k, v in tensors.items() if not k.startswith("optimizer.")}
        statistics = {k[len("optimizer."):]: v.astype(np.float32) for k, v in tensors.items() if k.startswith("optimizer.")}
        checkpoint = cls(params, statistics, metadata)
        expected = decoder.parameter_shapes(checkpoint.config)
        if set(expected) != set(params):
            raise CheckpointError(f"{path}: parameters {sorted(set(params) ^ set(expected))} do not match the configuration")
        for name, shape in expected.items():
            if tuple(params[name].shape) != tuple(shape):
                raise CheckpointError(f"{path}: {name} has shape {list(params[name].shape)}, not {list(shape)}")
        return checkpoint

    def write(self, path, params, statistics, step, skipped_steps):
        """Writes parameters and statistics at `step` as a glam checkpoint, atomically (temporary file, fsync, rename)."""
        tensors = {name: np.asarray(value, np.float32) for name, value in params.items()}
        tensors.update({name: np.asarray(value, np.float32) for name, value in statistics.items()})
        metadata = dict(self.metadata)
        metadata.update({"step": str(step), "skipped_steps": str(skipped_steps)})
        metadata.pop("checksum", None)
        metadata["checksum"] = checksum(tensors, metadata)
        temporary = f"{path}.tmp-{os.getpid()}"
        save_file(tensors, temporary, metadata=metadata)
        with open(temporary, "rb") as f:
            os.fsync(f.fileno())
        os.replace(temporary, path)


# ----------------------------------------------------------------------------------------------
# The mesh and the sharded step

def make_mesh(data, mdl, devices=None):
    """A `data` × `mdl` mesh over the first data·mdl devices."""
    devices = list(devices if devices is not None else jax.devices())
    if len(devices) < data * mdl:
        raise CheckpointError(f"a {data}x{mdl} mesh needs {data * mdl} devices, JAX has {len(devices)} "
                              "(on a CPU host set XLA_FLAGS=--xla_force_host_platform_device_count=N)")
    return Mesh(np.array(devices[:data * mdl]).reshape(data, mdl), ("data", "mdl"))


def check_layout(config, options, data, mdl):
    """The divisibility glam's `MeshLayout.check` requires."""
    b, t = options["batchSize"], options["sequenceLength"]
    e, g = config["num_experts"], config["num_groups"]
    problems = []
    if b % data:
        problems.append(f"{data} data cores do not divide the batch of {b} rows")
    if e > 0:
        if e % data:
            problems.append(f"{data} data cores do not divide the {e} experts")
        if g % data:
            problems.append(f"{data} data cores do not divide the {g} groups")
        if config["moe_hidden_dim"] % mdl:
            problems.append(f"{mdl} mdl cores do not divide the expert hidden size {config['moe_hidden_dim']}")
    elif mdl != 1:
        problems.append("a dense model has no expert weights to split over mdl")
    if (b * t) % g:
        problems.append(f"{g} groups do not split the {b}·{t} tokens")
    if problems:
        raise CheckpointError("; ".join(problems))


def parameter_spec(name):
    if name.endswith(".moe.wi"):
        return P("data", None, "mdl")
    if name.endswith(".moe.wo"):
        return P("data", "mdl", None)
    return P()


# GShard's placement of the routed tensors: computed split by groups, exchanged to be split by experts
# (the all-to-all), and back.
ACTIVATION_SPECS = {"groups": P("data"), "by_group": P(None, "data", None, None), "by_expert": P("data", None, None, None),
                    "expert_hidden": P("data", None, None, "mdl")}


def _statistic_spec(param_spec, param_shape, stat_shape):
    """A statistic keeps all but one dimension of its weight; it is split like the dimensions it keeps."""
    if len(stat_shape) == len(param_shape) and tuple(stat_shape) == tuple(param_shape):
        return param_spec
    if len(stat_shape) != len(param_shape) - 1:
        return P()
    spec = list(param_spec) + [None] * (len(param_shape) - len(param_spec))
    for dropped in range(len(param_shape)):
        kept = [param_shape[i] for i in range(len(param_shape)) if i != dropped]
        if tuple(kept) == tuple(stat_shape):
            return P(*[spec[i] for i in range(len(param_shape)) if i != dropped])
    return P()


class ShardedTrainer:
    """Training and evaluation of a glam checkpoint's model on a `data` × `mdl` mesh."""

    def __init__(self, checkpoint, mesh):
        self.checkpoint, self.mesh = checkpoint, mesh
        self.config, self.options = checkpoint.config, checkpoint.options
        check_layout(self.config, self.options, mesh.shape["data"], mesh.shape["mdl"])
        check_factoring_agrees({k: v.shape for k, v in checkpoint.params.items()})
        self.tx = adafactor(self.options)
        self.param_shardings = {name: NamedSharding(mesh, parameter_spec(name)) for name in checkpoint.params}
        self.params = {name: jax.device_put(value, self.param_shardings[name]) for name, value in checkpoint.params.items()}
        state = optimizer_state(self.tx, checkpoint.params, checkpoint.statistics, checkpoint.step)
        self.state_shardings = self._state_shardings(state)
        self.state = jax.device_put(state, self.state_shardings)
        self.step = checkpoint.step
        self.batch_sharding = NamedSharding(mesh, P("data", None))
        self._train = jax.jit(self._train_step, in_shardings=(self.param_shardings, self.state_shardings, self.batch_sharding),
                              out_shardings=(self.param_shardings, self.state_shardings, None), donate_argnums=(0, 1))
        self._loss = jax.jit(self._loss_and_logits, in_shardings=(self.param_shardings, self.batch_sharding))

    def _state_shardings(self, state):
        factored = find_state(state, optax._src.factorized.FactoredState)
        specs = {}
        for field in ("v_row", "v_col", "v"):
            specs[field] = {name: NamedSharding(self.mesh, _statistic_spec(parameter_spec(name), self.checkpoint.params[name].shape,
                                                                           getattr(factored, field)[name].shape))
                            for name in self.checkpoint.params}
        replicated = NamedSharding(self.mesh, P())

        def sharding(x):
            if isinstance(x, optax._src.factorized.FactoredState):
                return x._replace(count=replicated, v_row=specs["v_row"], v_col=specs["v_col"], v=specs["v"])
            return jax.tree_util.tree_map(lambda _: replicated, x)
        return jax.tree_util.tree_map(sharding, state, is_leaf=lambda x: isinstance(x, optax._src.factorized.FactoredState))

    def _constrain(self, x, name):
        return jax.lax.with_sharding_constraint(x, NamedSharding(self.mesh, ACTIVATION_SPECS[name]))

    def _forward(self, params, batch):
        return decoder.forward(params, self.config, batch["tokens"], batch["targets"], batch["paddings"], batch["segment_ids"],
                               constrain=self._constrain)

    def _loss_and_logits(self, params, batch):
        loss, (logits, ce, z, aux) = self._forward(params, batch)
        return {"loss": loss, "ce": ce, "z_loss": z, "aux_loss": aux, "logits": logits}

    def _train_step(self, params, state, batch):
        (loss, (_, ce, z, aux)), grads = jax.value_and_grad(self._forward, has_aux=True)(params, batch)
        updates, state = self.tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        return params, state, {"loss": loss, "ce": ce, "z_loss": z, "aux_loss": aux}

    def _loss_logits_grads(self, params, batch):
        (loss, (logits, ce, z, aux)), grads = jax.value_and_grad(self._forward, has_aux=True)(params, batch)
        return {"loss": loss, "ce": ce, "z_loss": z, "aux_loss": aux, "logits": logits}, grads

    def gradients(self, batch):
        """Loss terms, logits and every parameter's gradient of the current parameters on `batch` (no update)."""
        if not hasattr(self, "_grads"):
            self._grads = jax.jit(self._loss_logits_grads, in_shardings=(self.param_shardings, self.batch_sharding))
        out, grads = self._grads(self.params, self.put(batch))
        return {k: np.asarray(v) for k, v in out.items()}, {k: np.asarray(v) for k, v in grads.items()}

    def put(self, batch):
        return {k: jax.device_put(np.asarray(v), self.batch_sharding) for k, v in batch.items()}

    def train_step(self, batch):
        """One Adafactor step on `batch`; returns its losses (before the update)."""
        self.params, self.state, report = self._train(self.params, self.state, self.put(batch))
        self.step += 1
        return {k: float(v) for k, v in report.items()}

    def evaluate(self, batch):
        """Loss terms and logits of the current parameters on `batch`."""
        out = self._loss(self.params, self.put(batch))
        return {k: (np.asarray(v) if k == "logits" else float(v)) for k, v in out.items()}

    def validation_ce(self, batches):
        """Cross-entropy per real token over validation batches, as `Trainer.validationLoss()`."""
        total, tokens = 0.0, 0
        for batch in batches:
            b, t = batch["tokens"].shape
            total += self.evaluate(batch)["ce"] * b * t
            tokens += int((batch["paddings"] == 0).sum())
        return total / max(tokens, 1)

    def compiled_train_step(self, batch):
        """The XLA executable of one sharded training step (for its collectives)."""
        return self._train.lower(self.params, self.state, self.put(batch)).compile()

    def write(self, path):
        """The current state as a glam checkpoint that `glam train --resume` continues."""
        params = {k: np.asarray(v) for k, v in self.params.items()}
        self.checkpoint.write(path, params, glam_statistics(self.state, params), self.step, self.checkpoint.skipped_steps)
