"""benchmarks/hlo_counts.py on hand-made HLO / thunk / PTX text, build_step on this CPU, and (when
jax-cuda12-plugin can be found) the whole benchmark compiling for an H200."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import hlo_counts as hc  # noqa: E402

# A scan of 4 micro-steps over a [1000, 8] table: per iteration a gather fusion, an in-place
# scatter fusion, a whole-table copy, an all-gather, a copy of a [1000] vector, an unfused
# add, and a nested loop of 3 iterations with one fusion; the condition runs one compare fusion.
HLO = """HloModule jit_step, is_scheduled=true

%fused_gather (p0: f32[1000,8], p1: s32[16]) -> f32[16,8] {
  %p0 = f32[1000,8]{1,0} parameter(0)
  %p1 = s32[16]{0} parameter(1)
  ROOT %gather.1 = f32[16,8]{1,0} gather(%p0, %p1), offset_dims={1}, collapsed_slice_dims={0}, start_index_map={0}, index_vector_dim=1, slice_sizes={1,8}
}

%add_f32 (a: f32[], b: f32[]) -> f32[] {
  %a = f32[] parameter(0)
  %b = f32[] parameter(1)
  ROOT %add.9 = f32[] add(%a, %b)
}

%fused_scatter (q0: f32[1000,8], q1: s32[16], q2: f32[16,8]) -> f32[1000,8] {
  %q0 = f32[1000,8]{1,0} parameter(0)
  %q1 = s32[16]{0} parameter(1)
  %q2 = f32[16,8]{1,0} parameter(2)
  %bitcast.3 = s32[16,1]{1,0} bitcast(%q1)
  ROOT %scatter.1 = f32[1000,8]{1,0} scatter(%q0, %bitcast.3, %q2), update_window_dims={1}, inserted_window_dims={0}, scatter_dims_to_operand_dims={0}, index_vector_dim=1, to_apply=%add_f32
}

%fused_compare (c0: s32[]) -> pred[] {
  %c0 = s32[] parameter(0)
  %constant.4 = s32[] constant(4)
  ROOT %compare.1 = pred[] compare(%c0, %constant.4), direction=LT
}

%fused_inner (r0: f32[16,8]) -> f32[16,8] {
  %r0 = f32[16,8]{1,0} parameter(0)
  ROOT %multiply.2 = f32[16,8]{1,0} multiply(%r0, %r0)
}

%inner_body (ib: (s32[], f32[16,8])) -> (s32[], f32[16,8]) {
  %ib = (s32[], f32[16,8]{1,0}) parameter(0)
  %gte.20 = s32[] get-tuple-element(%ib), index=0
  %gte.21 = f32[16,8]{1,0} get-tuple-element(%ib), index=1
  %inner_fusion = f32[16,8]{1,0} fusion(%gte.21), kind=kLoop, calls=%fused_inner
  ROOT %tuple.20 = (s32[], f32[16,8]{1,0}) tuple(%gte.20, %inner_fusion)
}

%inner_cond (ic: (s32[], f32[16,8])) -> pred[] {
  %ic = (s32[], f32[16,8]{1,0}) parameter(0)
  ROOT %constant.21 = pred[] constant(true)
}

%body (arg: (s32[], f32[1000,8], s32[4,16], f32[1000])) -> (s32[], f32[1000,8], s32[4,16], f32[1000]) {
  %arg = (s32[], f32[1000,8]{1,0}, s32[4,16]{1,0}, f32[1000]{0}) parameter(0)
  %gte.0 = s32[] get-tuple-element(%arg), index=0
  %gte.1 = f32[1000,8]{1,0} get-tuple-element(%arg), index=1
  %gte.2 = s32[4,16]{1,0} get-tuple-element(%arg), index=2
  %gte.3 = f32[1000]{0} get-tuple-element(%arg), index=3
  %constant.1 = s32[] constant(1)
  %ids = s32[16]{0} bitcast(%gte.2)
  %gather_fusion = f32[16,8]{1,0} fusion(%gte.1, %ids), kind=kLoop, calls=%fused_gather, metadata={op_name="a, b"}
  %copy.7 = f32[1000,8]{1,0} copy(%gte.1)
  %copy.8 = f32[1000]{0} copy(%gte.3)
  %all-gather-start.1 = (f32[16,8]{1,0}, f32[32,8]{1,0}) all-gather-start(%gather_fusion), replica_groups={{0,1}}, dimensions={0}
  %all-gather-done.1 = f32[32,8]{1,0} all-gather-done(%all-gather-start.1)
  %inner_init = (s32[], f32[16,8]{1,0}) tuple(%gte.0, %gather_fusion)
  %while.2 = (s32[], f32[16,8]{1,0}) while(%inner_init), condition=%inner_cond, body=%inner_body, backend_config={"known_trip_count":{"n":"3"}}
  %gte.30 = f32[16,8]{1,0} get-tuple-element(%while.2), index=1
  %input_scatter_fusion = f32[1000,8]{1,0} fusion(%copy.7, %ids, %gte.30), kind=kInput, calls=%fused_scatter
  %add.5 = s32[] add(%gte.0, %constant.1)
  ROOT %tuple.1 = (s32[], f32[1000,8]{1,0}, s32[4,16]{1,0}, f32[1000]{0}) tuple(%add.5, %input_scatter_fusion, %gte.2, %copy.8)
}

%cond (carg: (s32[], f32[1000,8], s32[4,16], f32[1000])) -> pred[] {
  %carg = (s32[], f32[1000,8]{1,0}, s32[4,16]{1,0}, f32[1000]{0}) parameter(0)
  %gte.9 = s32[] get-tuple-element(%carg), index=0
  ROOT %loop_compare_fusion = pred[] fusion(%gte.9), kind=kLoop, calls=%fused_compare
}

ENTRY %main (t: f32[1000,8], i: s32[4,16], v: f32[1000]) -> f32[1000,8] {
  %t = f32[1000,8]{1,0} parameter(0)
  %i = s32[4,16]{1,0} parameter(1)
  %v = f32[1000]{0} parameter(2)
  %constant.0 = s32[] constant(0)
  %init = (s32[], f32[1000,8]{1,0}, s32[4,16]{1,0}, f32[1000]{0}) tuple(%constant.0, %t, %i, %v)
  %while.1 = (s32[], f32[1000,8]{1,0}, s32[4,16]{1,0}, f32[1000]{0}) while(%init), condition=%cond, body=%body, backend_config={"known_trip_count":{"n":"4"}}
  ROOT %gte.10 = f32[1000,8]{1,0} get-tuple-element(%while.1), index=1
}
"""


def test_hlo_loop_counts_on_a_hand_made_module():
    comps, entry = hc.parse_module(HLO)
    assert entry == "main" and "body" in comps and "fused_scatter" in comps
    loop = hc.step_loop(comps, entry, 4)
    assert loop.name == "while.1" and hc.trip_count(loop) == 4
    ops = hc.loop_ops(comps, loop, [(1000, 8)], [(1000,)])
    names = [k["name"] for k in ops["kernels"]]
    # gather, scatter, the nested loop's fusion 3 times, the condition's compare
    assert sorted(names) == sorted(["gather_fusion", "input_scatter_fusion"] + ["inner_fusion"] * 3
                                   + ["loop_compare_fusion"])
    assert [c["name"] for c in ops["table_copies"]] == ["copy.7"]
    assert [c["name"] for c in ops["vector_copies"]] == ["copy.8"]
    assert len(ops["copies"]) == 2 and len(ops["collectives"]) == 1
    assert ops["collective_bytes"] == {"all-gather": 16 * 8 * 4}
    assert ops["unfused_small_ops"] == 1  # the add
    assert ops["table_transfer_bytes"] == 1000 * 8 * 4
    by = {k["name"]: k["bytes"] for k in ops["kernels"]}
    rows = 16 * 8 * 4
    assert by["gather_fusion"] == rows + 16 * 4 + rows  # the rows read, the ids, the result
    # in place: the updates written and the rows they read, the ids and the updates
    assert by["input_scatter_fusion"] == 2 * rows + 16 * 4 + rows
    assert by["loop_compare_fusion"] == 4 + 1
    assert ops["all_operand_bytes"] > ops["bytes"]  # the plain sum counts the table whole


NESTED = HLO.split("%fused_compare")[0] + """%fused_outer (o0: f32[1000,8], o1: s32[16], o2: f32[16,8]) -> f32[1000,8] {
  %o0 = f32[1000,8]{1,0} parameter(0)
  %o1 = s32[16]{0} parameter(1)
  %o2 = f32[16,8]{1,0} parameter(2)
  %neg.1 = f32[16,8]{1,0} negate(%o2)
  ROOT %inner_scatter = f32[1000,8]{1,0} fusion(%o0, %o1, %neg.1), kind=kCustom, calls=%fused_scatter
}
"""


def test_a_scatter_nested_one_fusion_down_counts_as_in_place():
    """A TPU's scatter_custom_fusion: the fusion's root is a fusion whose root scatters into the
    outer fusion's first operand; counted as the rows written and read, not the whole table."""
    comps, _ = hc.parse_module(NESTED)
    syms = {"t": "f32[1000,8]{1,0}", "ids": "s32[16]{0}", "u": "f32[16,8]{1,0}"}
    ins = hc.parse_instr("  %scatter_custom_fusion.1 = f32[1000,8]{1,0} fusion(%t, %ids, %u), kind=kCustom, "
                         "calls=%fused_outer")
    moved, full = hc.kernel_bytes(ins, comps, syms)
    rows = 16 * 8 * 4
    assert moved == 2 * rows + 16 * 4 + rows  # as the plain in-place scatter fusion
    assert full == 2 * 1000 * 8 * 4 + 16 * 4 + rows


def test_hlo_parse_tuple_types_strings_and_shapes():
    ins = hc.parse_instr('  ROOT %x.1 = (f32[2,3]{1,0}, /*index=1*/s32[]) custom-call(%a, %b), '
                         'custom_call_target="foo(,)", backend_config={"k":"{v}"}')
    assert ins.root and ins.name == "x.1" and ins.opcode == "custom-call" and ins.operands == ["a", "b"]
    assert hc.nbytes(ins.type) == 2 * 3 * 4 + 4
    assert hc.shapes("bf16[4]{0:T(8)S(1)}") == [("bf16", (4,))]
    assert hc.nbytes("pred[10]") == 10 and hc.nbytes("s32[]") == 4


THUNKS = """001: kCopy         [source       | next=003 (1)] kCopy
002: kCustomKernel [source       | sink        ] loop_broadcast_fusion grid: [1, 1, 1] threads: [128, 1, 1]  shared_memory: 0 bytes
003: kWhile        [prev=001 (1) | next=010 (1)]
condition:
    004: kCustomKernel [source | sink] loop_compare_fusion grid: [1, 1, 1] threads: [1, 1, 1]  shared_memory: 0 bytes
  body:
    005: kCustomKernel       [source        | next=006 (1) ] input_scatter_fusion_1 grid: [48, 1, 1] threads: [128, 1, 1]  shared_memory: 0 bytes
    006: kCopy               [prev=005 (1)  | next=007 (1) ] kCopy
    007: kDynamicSliceFusion [prev=006 (1)  | next=009 (1) ] params=1, results=1
        008: kCopy [source | sink] kCopy
    009: kCustomKernel       [prev=007 (1)  | sink         ] loop_add_fusion grid: [1, 1, 1] threads: [1, 1, 1]  shared_memory: 0 bytes
010: kCopy         [prev=003 (1) | sink        ] kCopy
"""
META = """thunk_metadata {
  thunk_info {
    profile_annotation: "while.1"
    thunk_id: 3
  }
  thunk_kind: "kWhile"
}
thunk_metadata {
  thunk_info {
    profile_annotation: "input_scatter_fusion.1"
    thunk_id: 5
  }
  thunk_kind: "kCustomKernel"
}
"""


def test_thunk_sequence_counts_per_iteration():
    th = hc.thunk_loop_counts(THUNKS, META, "while.1")
    assert th["while"] == "while.1"
    assert th["kernels"] == 3 and th["memcpys"] == 2 and th["device_ops"] == 5
    assert th["kernel_names"] == ["loop_compare_fusion", "input_scatter_fusion.1", "loop_add_fusion"]
    assert th["by_kind"] == {"kCustomKernel": 3, "kCopy": 1, "kDynamicSliceFusion": 1}
    assert hc.kernel_key("input_scatter_fusion.1") == "input_scatter_fusion_1"


PTX = """
.visible .entry input_scatter_fusion_1(
  .param .u64 a
)
{
$L__BB0_2:
  atom.relaxed.sys.global.cas.b32 %r5, [%rd4], %r3, %r4;
  setp.ne.s32 %p2, %r5, %r3;
  @%p2 bra $L__BB0_2;
  ret;
}
.visible .entry input_scatter_fusion(
  .param .u64 b
)
{
  @%p1 atom.global.v4.f32.add {%f1, %f2, %f3, %f4}, [%rd2], {%f5, %f6, %f7, %f8};
  red.global.add.f32 [%rd3], %f9;
  atom.global.add.u32 %r1, [%rd5], 1;
  atom.global.cas.b32 %r2, [%rd6], %r7, %r8;
  ret;
}
"""


def test_ptx_atomics_cas_loops_and_native_adds():
    a = hc.ptx_atomics(PTX)
    assert a["cas_loops"] == 2
    assert a["native"] == {"atom.global.v4.f32.add": 1, "red.global.add.f32": 1, "atom.global.add.u32": 1}
    assert a["by_entry"] == {"input_scatter_fusion_1": {"cas": 1, "native": 0},
                             "input_scatter_fusion": {"cas": 1, "native": 3}}
    assert hc.ptx_entries(PTX) == ["input_scatter_fusion_1", "input_scatter_fusion"]


def test_build_step_compiles_the_trainers_step_on_cpu(head_corpus, tmp_path):
    """build_step against the w2vjax of this commit (device windows forced on CPU, the XLA
    engine), lowered and compiled for this CPU; the counting finds the micro-step loop."""
    import jax
    import accelerator_compile as ac
    from w2vjax import make_config
    from w2vjax.prepare import prepare

    data = prepare(head_corpus(3000), str(tmp_path), min_count=2)
    cfg = make_config(model="skipgram", loss="ns", dim=16, batch_size=64, steps_per_call=4,
                      device_windows=True, cpu_kernel=False)
    step, abstract, info = ac.build_step(cfg, data, jax.devices()[:1])
    assert info["table_shapes"]["emb_in"] == [len(data.vocab), 16]
    assert abstract[1].tokens.shape[:2] == (4, info["token_rows"])
    compiled = step.lower(*abstract).compile()
    counts = ac.count(compiled.as_text(), info, 4, None, "cpu")
    per = counts["per_micro_step"]
    assert per["kernels"] > 0 and per["table_copies"] >= 0 and per["cas_loops"] is None
    assert per["raw_words_per_micro_step"] == info["token_rows"] * info["row_tokens"]


def test_pallas_kernels_count_their_programs_accesses():
    """pallas_access_bytes on an interpret-mode skip-gram/NS call: per program of 4 pairs, D = 12
    (chunks 8 + 4), K = 3: h read (4 x 12 floats), the 4 output slots' rows read and added (the add
    counted read and written), the input rows added; times 2 programs, as the hand count says."""
    import jax
    import jax.numpy as jnp
    import accelerator_compile as ac
    from w2vjax.engines import pallas_gpu as pg

    v, d, b = 50, 12, 8
    f = lambda ei, eo, inp, out, neg, mask: pg.ns_update(ei, eo, inp, out, neg, mask, 0.1, 2.0,  # noqa: E731
                                                         block=4, interpret=True)
    i32 = lambda *s: jnp.zeros(s, jnp.int32)  # noqa: E731
    j = jax.make_jaxpr(f)(jnp.zeros((v, d)), jnp.zeros((v, d)), i32(b), i32(b), i32(b, 3), jnp.ones(b))
    got = {k["name"]: k for k in ac.pallas_access_bytes(j, {v * d})}
    assert sorted(got) == ["w2v_fused_update", "w2v_touch_count", "w2v_touch_reset"]
    up = got["w2v_fused_update"]
    floats = 4 * d + 4 * 4 * d + 2 * 4 * 4 * d + 2 * 4 * d  # per program: h, out rows read, out adds, in adds
    assert up["programs"] == 2 and up["table_bytes"] == 2 * 4 * floats
    assert up["bytes"] > up["table_bytes"] and got["w2v_touch_count"]["table_bytes"] == 0
    assert up["masked_bytes"] == 2 * 4 * (4 * d + 4 * 4 * d)  # interpret mode: the loads; its atomics take no mask
    gpu = jax.make_jaxpr(lambda *a: pg.ns_update(*a, 0.1, 2.0, block=4))(
        jnp.zeros((v, d)), jnp.zeros((v, d)), i32(b), i32(b), i32(b, 3), jnp.ones(b))
    up = {k["name"]: k for k in ac.pallas_access_bytes(gpu, {v * d})}["w2v_fused_update"]
    assert up["table_bytes"] == 2 * 4 * floats and up["masked_bytes"] == up["table_bytes"]  # every row access


def _compile_site():
    """A place jax-cuda12-plugin can be imported from: installed, or ``$W2VJAX_COMPILE_SITE``."""
    if importlib.util.find_spec("jax_cuda12_plugin") is not None:
        return ""
    site = os.environ.get("W2VJAX_COMPILE_SITE")
    if site and os.path.isdir(os.path.join(site, "jax_cuda12_plugin")):
        return site
    return None


def test_benchmark_compiles_for_an_h200(head_corpus, tmp_path):
    site = _compile_site()
    if site is None:
        pytest.importorskip("jax_cuda12_plugin", reason="jax-cuda12-plugin is not installed "
                            "(pip install -e .[compile], or set W2VJAX_COMPILE_SITE)")
    out = tmp_path / "out"
    cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "accelerator_compile.py"), "--target", "h200",
           "--batch-size", "256", "--corpus", head_corpus(3000), "--corpus-cache", str(tmp_path / "c"),
           "--out", str(out)] + (["--site", site] if site else [])
    env = dict(os.environ, XLA_FLAGS="--xla_gpu_ftz=true")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads((out / "report.json").read_text())
    per = rep["per_micro_step"]
    assert rep["target"] == "h200" and rep["xla_flags"] == "--xla_gpu_ftz=true" and rep["cannot_know"]
    assert per["kernels"] > 0 and per["kernels_hlo"] >= per["kernels"]
    assert per["cas_loops"] == 0 and per["native_atomics"]  # flushed denormals: native f32 atomics
    assert (out / "compiled.hlo.txt").exists() and list((out / "dump").glob("*.ptx"))


def test_roofline_floor_sums_each_kernels_launch_or_bytes():
    """roofline.floor: each kernel takes the longer of its assumed least time and its bytes over
    the bandwidth; a kernel only in the HLO is no launch; a Pallas custom call takes its jaxpr's bytes."""
    import roofline
    rep = {"per_micro_step": {"raw_words_per_micro_step": 1000}, "rows_touched_bytes_per_raw_word": 10_000.0,
           "details": {"kernels": [{"name": "a", "op": "fusion", "bytes": 10_000_000, "times": 1},
                                   {"name": "b.1", "op": "fusion", "bytes": 8, "times": 2},
                                   {"name": "c", "op": "fusion", "bytes": 8, "times": 1},
                                   {"name": "pallas_call.0", "op": "custom-call", "bytes": 10 ** 12, "times": 1}],
                       "kernels_only_in_hlo": ["c"],
                       "pallas_kernels": [{"name": "w2v_fused_update", "bytes": 5_000_000, "masked_bytes": 4_000_000}]}}
    f = roofline.floor(rep, 2.0, 1e12)  # a: 10 us, b twice: 2 us each, the Pallas call 5 us
    assert f["kernels"] == 4 and abs(f["micro_step_us"] - 19.0) < 1e-9 and abs(f["raw_words_per_s"] - 1000 / 19e-6) < 1
    live = roofline.floor(rep, 2.0, 1e12, live=True)  # 1 MB unmasked + 1.5 x 10 kB x 1000 words
    assert abs(live["micro_step_us"] - (10 + 4 + 16)) < 1e-9
