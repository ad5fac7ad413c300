"""Counting what a compiled step would run, from XLA's text: optimised HLO, GPU thunk sequence, PTX.

Used by ``benchmarks/accelerator_compile.py``; plain text parsing, no JAX needed (the unit
tests in ``tests/test_accelerator_compile.py`` run it on hand-made snippets).

Rules (per iteration of a ``while`` loop, i.e. per micro-step of the step's ``lax.scan``):

* **kernels** (:func:`loop_ops`): the instructions of the loop's body *and* condition
  computations (the condition runs once per iteration too), not looking inside fusions, that
  launch device work: fusions, custom-calls and unfused heavy ops (scatter, sort, reduce, ...):
  every opcode but the free ones (:data:`FREE`: parameter, constant, tuple,
  get-tuple-element, bitcast, the ``*-done`` halves of async pairs, ...), the transfers
  (:data:`COPIES`: ``copy``, ``copy-start``, TPU ``slice-start``; counted apart as *copies*), the
  collectives (:data:`COLLECTIVES`, counted apart) and unfused elementwise / shape ops
  (:data:`SMALL`, counted apart: XLA:GPU wraps every op in a fusion, so there are none on GPU; on
  TPU they are scalar / vector instructions of the one program, not launches).  A nested
  ``while`` counts its own body and condition times its known trip count; a ``call`` /
  ``async-start`` counts what it calls; a ``conditional`` its largest branch.  On GPU the thunk
  sequence (:func:`thunk_loop_counts`) shows what XLA really emits (a dynamic-update-slice
  fusion may become a memcpy): the benchmark reports that count as ``kernels`` there.  On TPU
  a "kernel" is a fusion of the one TPU program (no launch of its own).
* **table copies** (:func:`loop_ops`): ``copy`` / ``copy-start`` instructions in the loop whose
  result has the shape of a whole table (``[V, D]``; any dtype), e.g. the copy XLA inserts when a
  table is read after a scatter into it was scheduled, or (TPU) a table staged into on-chip
  memory; ``table_transfer_bytes`` adds up the copies and async slices from or into a table's
  buffer.
* **collective bytes**: operand bytes of the collectives in the loop (the per-device shapes of
  the partitioned module), by opcode.
* **bytes moved** (:func:`kernel_bytes`), an estimate from the buffers: per kernel, operands +
  results, except that a fusion parameter read only by gathers / dynamic-slices counts the
  bytes those read (their results), and a buffer updated in place by the fusion's root scatter
  / dynamic-update-slice counts the updates (read and written), not the whole buffer.
  ``all_operand_bytes`` is the plain sum of operand and result sizes (every scattered table
  counted whole, but a gather of more rows than its table holds counted only as the table).
* **PTX** (:func:`ptx_atomics`): every ``atom...cas`` instruction is one compare-and-swap retry
  loop (XLA emits a CAS loop for an atomic it cannot do natively); other ``atom.*`` / ``red.*``
  instructions are native atomics, counted by opcode.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Iterable, Optional

DTYPE_BYTES = {"pred": 1, "s2": 1, "u2": 1, "s4": 1, "u4": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2,
               "f16": 2, "bf16": 2, "s32": 4, "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8,
               "c64": 8, "c128": 16, "token": 0}
FREE = {"parameter", "constant", "get-tuple-element", "tuple", "bitcast", "after-all", "opt-barrier",
        "add-dependency", "partition-id", "replica-id", "domain", "get-dimension-size",
        "copy-done", "all-gather-done", "all-reduce-done", "collective-permute-done", "send-done",
        "recv-done", "async-done", "async-update", "optimization-barrier"}
COLLECTIVES = {"all-gather", "all-gather-start", "all-reduce", "all-reduce-start", "reduce-scatter",
               "all-to-all", "collective-permute", "collective-permute-start", "collective-broadcast",
               "ragged-all-to-all"}
COPIES = {"copy", "copy-start", "slice-start", "dynamic-slice-start"}  # copies and (TPU) async slices: transfers
# unfused elementwise / shape ops: inside a kernel on GPU (XLA:GPU wraps every op in a fusion); on
# TPU scalar- or vector-unit instructions of the one program; counted apart, not as kernels
SMALL = {"add", "subtract", "multiply", "divide", "remainder", "xor", "or", "and", "not", "shift-left",
         "shift-right-logical", "shift-right-arithmetic", "compare", "select", "convert", "broadcast", "reshape",
         "iota", "negate", "maximum", "minimum", "abs", "clamp", "exponential", "log", "sqrt", "rsqrt",
         "power", "sign", "floor", "ceil", "round-nearest-even", "round-nearest-afz", "is-finite",
         "bitcast-convert", "popcnt", "count-leading-zeros", "tanh", "logistic", "exponential-minus-one",
         "log-plus-one", "atan2", "cosine", "sine", "real", "imag", "complex", "slice"}
NESTED = {"while", "call", "async-start", "conditional"}
# opcodes inside a fusion worth naming in the report
NOTABLE = {"scatter", "gather", "sort", "reduce", "reduce-window", "dynamic-update-slice", "dynamic-slice",
           "dot", "convolution", "rng-bit-generator", "custom-call", "concatenate", "pad", "transpose"}

_SHAPE = re.compile(r"\b(pred|token|[subfc]\d+|bf16|f8\w*)\[([\d,\s]*)\]")
_HEADER = re.compile(r"^(ENTRY\s+)?%?([\w.\-]+)\s*\(.*\)\s*->\s*.*\{\s*$")
_INSTR = re.compile(r"^\s*(ROOT\s+)?%?([\w.\-]+)\s*=\s*(.*)$")


class Instr:
    __slots__ = ("name", "type", "opcode", "operands", "attrs", "root")

    def __init__(self, name, type_, opcode, operands, attrs, root):
        self.name, self.type, self.opcode, self.operands, self.attrs, self.root = (
            name, type_, opcode, operands, attrs, root)

    def __repr__(self):
        return f"Instr({self.name}: {self.type} {self.opcode})"


def _match_paren(s: str, i: int) -> int:
    """Index just past the bracket group opening at ``s[i]`` ('(' / '{' / '['), skipping strings."""
    pairs = {"(": ")", "{": "}", "[": "]"}
    stack, j = [], i
    while j < len(s):
        c = s[j]
        if c == '"':
            j += 1
            while j < len(s) and s[j] != '"':
                j += 2 if s[j] == "\\" else 1
        elif c in pairs:
            stack.append(pairs[c])
        elif stack and c == stack[-1]:
            stack.pop()
            if not stack:
                return j + 1
        j += 1
    return len(s)


def _split_top(s: str) -> list[str]:
    """Split ``s`` at the commas that are not inside brackets or strings."""
    out, depth, cur, q = [], 0, [], False
    for c in s:
        if q:
            cur.append(c)
            q = c != '"'
            continue
        if c == '"':
            q = True
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(c)
    if "".join(cur).strip():
        out.append("".join(cur).strip())
    return out


def parse_instr(line: str) -> Optional[Instr]:
    m = _INSTR.match(line)
    if not m:
        return None
    root, name, rest = bool(m.group(1)), m.group(2), m.group(3)
    if rest.startswith("("):  # a tuple type
        end = _match_paren(rest, 0)
        type_, rest = rest[:end], rest[end:].lstrip()
    else:
        sp = rest.find(" ")
        if sp < 0:
            return None
        type_, rest = rest[:sp], rest[sp + 1:].lstrip()
    p = rest.find("(")
    if p < 0:
        return None
    opcode = rest[:p].strip()
    end = _match_paren(rest, p)
    operands = [o.split()[-1].lstrip("%") for o in _split_top(rest[p + 1:end - 1]) if o]
    attrs = {}
    for part in _split_top(rest[end:].lstrip(", ")):
        if "=" in part:
            k, v = part.split("=", 1)
            attrs[k.strip()] = v.strip()
    return Instr(name, type_, opcode, operands, attrs, root)


def parse_module(text: str) -> tuple[dict[str, list[Instr]], Optional[str]]:
    """Optimised HLO text -> ``({computation: [instructions]}, entry computation name)``."""
    comps: dict[str, list[Instr]] = {}
    entry, cur = None, None
    for line in text.splitlines():
        if cur is None:
            m = _HEADER.match(line)
            if m and not line.startswith(" "):
                cur = m.group(2)
                comps[cur] = []
                if m.group(1):
                    entry = cur
            continue
        if line.strip() == "}":
            cur = None
            continue
        ins = parse_instr(line)
        if ins is not None:
            comps[cur].append(ins)
    return comps, entry


def shapes(type_: str) -> list[tuple[str, tuple[int, ...]]]:
    """The array shapes in an HLO type (a tuple type gives several)."""
    return [(dt, tuple(int(d) for d in dims.split(",") if d.strip())) for dt, dims in _SHAPE.findall(type_)]


def nbytes(type_: str) -> int:
    total = 0
    for dt, dims in shapes(type_):
        n = 1
        for d in dims:
            n *= d
        total += n * DTYPE_BYTES.get(dt, 1)
    return total


def _called(ins: Instr, key: str) -> list[str]:
    v = ins.attrs.get(key)
    if not v:
        return []
    return [x.strip().lstrip("%") for x in v.strip("{}").split(",") if x.strip()]


def trip_count(ins: Instr) -> Optional[int]:
    m = re.search(r'"known_trip_count"\s*:\s*\{\s*"n"\s*:\s*"(\d+)"', ins.attrs.get("backend_config", ""))
    return int(m.group(1)) if m else None


def find_loops(comps: dict[str, list[Instr]], entry: str) -> list[Instr]:
    """The ``while`` instructions reachable from the entry computation, outermost first (not
    inside other whiles' bodies)."""
    out, seen = [], set()

    def walk(comp):
        if comp in seen or comp not in comps:
            return
        seen.add(comp)
        for ins in comps[comp]:
            if ins.opcode == "while":
                out.append(ins)
            elif ins.opcode in ("call", "async-start", "conditional"):
                for c in _called(ins, "to_apply") + _called(ins, "calls") + _called(ins, "branch_computations"):
                    walk(c)
    walk(entry)
    return out


def step_loop(comps: dict[str, list[Instr]], entry: str, trips: Optional[int] = None) -> Instr:
    """The micro-step loop: the outermost while with ``trips`` known iterations if one has,
    else the one whose body has the most instructions."""
    loops = find_loops(comps, entry)
    if not loops:
        raise ValueError("no while loop in the entry computation")
    if trips is not None:
        match = [w for w in loops if trip_count(w) == trips]
        if match:
            loops = match
    return max(loops, key=lambda w: len(comps.get(_called(w, "body")[0], [])))


def _symbols(comp: list[Instr]) -> dict[str, str]:
    return {ins.name: ins.type for ins in comp}


def _in_place_update(r: Instr, comps: dict[str, list[Instr]], symbols: dict[str, str]):
    """``(buffer operand, bytes of the updates)`` when ``r`` writes updates into a buffer in place:
    a scatter ``(buffer, indices, updates)``, a dynamic-update-slice ``(buffer, update,
    offsets...)``, or a fusion whose own root does (a TPU's ``scatter_custom_fusion`` nests its
    scatter one fusion down), its buffer mapped back to the fusion's operand; else None."""
    if r.opcode in ("scatter", "dynamic-update-slice") and r.operands:
        return r.operands[0], nbytes(symbols.get(r.operands[-1] if r.opcode == "scatter" else r.operands[1], ""))
    called = _called(r, "calls")
    inner = comps.get(called[0]) if called and r.opcode == "fusion" else None
    if not inner:
        return None
    iroot = next((fi for fi in inner if fi.root), inner[-1])
    found = _in_place_update(iroot, comps, _symbols(inner))
    if not found:
        return None
    param = next((fi for fi in inner if fi.name == found[0] and fi.opcode == "parameter"), None)
    if param is None or not param.operands or not param.operands[0].isdigit():
        return None
    k = int(param.operands[0])
    return (r.operands[k], found[1]) if k < len(r.operands) else None


def kernel_bytes(ins: Instr, comps: dict[str, list[Instr]], symbols: dict[str, str]) -> tuple[int, int]:
    """``(estimated bytes moved, all operand + result bytes)`` of one kernel (see the module
    docstring for the rule)."""
    op_types = [symbols.get(o, "") for o in ins.operands]
    full = sum(nbytes(t) for t in op_types) + nbytes(ins.type)
    called = _called(ins, "calls")
    body = comps.get(called[0]) if called and ins.opcode == "fusion" else None
    if body is None:
        if ins.opcode in ("gather", "dynamic-slice"):
            return 2 * nbytes(ins.type) + sum(nbytes(t) for t in op_types[1:]), full
        if ins.opcode in ("scatter", "dynamic-update-slice") and op_types:
            upd = sum(nbytes(t) for t in op_types[1:])
            return 2 * upd, full
        return full, full
    params = {fi.name for fi in body if fi.opcode == "parameter"}
    users: dict[str, list[tuple[Instr, int]]] = {}
    for fi in body:
        for k, o in enumerate(fi.operands):
            users.setdefault(o, []).append((fi, k))
    fsym = _symbols(body)
    by_name = {fi.name: fi for fi in body}

    def through_bitcasts(name):
        while name in by_name and by_name[name].opcode == "bitcast" and by_name[name].operands:
            name = by_name[name].operands[0]
        return name

    root = next((fi for fi in body if fi.root), body[-1] if body else None)
    if root is None:
        return full, full
    outs = [by_name.get(through_bitcasts(o)) for o in root.operands] if root.opcode == "tuple" else [
        by_name.get(through_bitcasts(root.name))]
    in_place = {}  # parameter name -> bytes of the updates written into it
    moved = 0
    for r in outs:
        if r is None:
            continue
        found = _in_place_update(r, comps, fsym)
        buf = through_bitcasts(found[0]) if found else None
        if found and buf in params:
            in_place[buf] = found[1]
            moved += found[1]  # the rows written
        else:
            moved += nbytes(r.type)
    for pname in params:
        if pname in in_place:
            moved += in_place[pname]  # the rows read before being written
            continue
        us = users.get(pname, [])
        if us and all(u.opcode in ("gather", "dynamic-slice") and k == 0 for u, k in us):
            moved += sum(nbytes(u.type) for u, _ in us)  # the rows read
        else:
            moved += nbytes(fsym.get(pname, ""))
    return moved, full


def loop_ops(comps: dict[str, list[Instr]], loop: Instr, table_shapes: Iterable[tuple[int, ...]] = (),
             vector_shapes: Iterable[tuple[int, ...]] = ()) -> dict:
    """What one iteration of ``loop`` runs (its body and condition), by the rules of the module
    docstring: ``kernels`` (list of dicts), ``copies``, ``collectives``, ``table_copies``,
    ``vector_copies``, ``bytes``, ``all_operand_bytes``, ``collective_bytes`` (by opcode),
    ``unknown_trip_loops`` (nested whiles counted once)."""
    table_shapes = {tuple(s) for s in table_shapes}
    vector_shapes = {tuple(s) for s in vector_shapes}
    res = {"kernels": [], "copies": [], "collectives": [], "table_copies": [], "vector_copies": [],
           "bytes": 0, "all_operand_bytes": 0, "collective_bytes": Counter(), "unknown_trip_loops": 0,
           "table_transfer_bytes": 0, "unfused_small_ops": 0}

    def walk(comp_name: str, times: int):
        comp = comps.get(comp_name, [])
        sym = _symbols(comp)
        for ins in comp:
            op = ins.opcode
            if op in FREE:
                continue
            if op == "while":
                n = trip_count(ins)
                if n is None:
                    res["unknown_trip_loops"] += 1
                    n = 1
                for c in _called(ins, "body") + _called(ins, "condition"):
                    walk(c, times * n)
                continue
            if op in ("call", "async-start"):
                for c in _called(ins, "to_apply") + _called(ins, "calls"):
                    walk(c, times)
                continue
            if op == "conditional":
                branches = _called(ins, "branch_computations") or (
                    _called(ins, "true_computation") + _called(ins, "false_computation"))
                if branches:
                    walk(max(branches, key=lambda b: len(comps.get(b, []))), times)
                continue
            moved, full = kernel_bytes(ins, comps, sym)
            if op in ("copy-start", "slice-start", "dynamic-slice-start"):  # (source, destination, context)
                sh = shapes(ins.type)
                piece = nbytes(f"{sh[1][0]}[{','.join(map(str, sh[1][1]))}]") if len(sh) > 1 else 0
                moved = full = 2 * piece
            fused = sorted({fi.opcode for c in _called(ins, "calls") for fi in comps.get(c, [])} & NOTABLE)
            item = {"name": ins.name, "op": op, "kind": ins.attrs.get("kind", ""), "fused_ops": fused,
                    "shape": ins.type if len(ins.type) < 120 else ins.type[:117] + "...",
                    "bytes": moved, "times": times}
            res["bytes"] += moved * times
            res["all_operand_bytes"] += full * times
            if op in COPIES:
                res["copies"].extend([item] * times)
                dims = {d for _, d in shapes(ins.type)}
                src = {d for o in ins.operands for _, d in shapes(sym.get(o, ""))}
                if op in ("copy", "copy-start") and dims & table_shapes:
                    res["table_copies"].extend([item] * times)
                elif op in ("copy", "copy-start") and dims & vector_shapes:
                    res["vector_copies"].extend([item] * times)
                if (dims | src) & table_shapes:  # copies and slices of a table: their bytes
                    res["table_transfer_bytes"] += moved // 2 * times
            elif op in SMALL:
                res["unfused_small_ops"] += times
            elif op in COLLECTIVES:
                res["collectives"].extend([item] * times)
                b = sum(nbytes(sym.get(o, "")) for o in ins.operands)
                res["collective_bytes"][op.replace("-start", "")] += b * times
            else:
                res["kernels"].append(item) if times == 1 else res["kernels"].extend([item] * times)

    for c in _called(loop, "body") + _called(loop, "condition"):
        walk(c, 1)
    res["collective_bytes"] = dict(res["collective_bytes"])
    return res


# -- GPU thunk sequence --------------------------------------------------------------------

_THUNK = re.compile(r"^(\s*)(\d+):\s+(k\w+)\s*(?:\[[^\]]*\])?\s*(\S*)")
KERNEL_THUNKS = {"kKernel", "kCustomKernel", "kGemm", "kCublasLtMatmul", "kCustomCall", "kTriangularSolve",
                 "kCholesky", "kFft", "kConvolution", "kNorm", "kCuDnn", "kTopK"}


CONTAINER_THUNKS = {"kWhile", "kConditional", "kSequential", "kCommandBuffer", "kDynamicSliceFusion"}


def parse_thunks(text: str) -> list[dict]:
    """``thunk_sequence.txt`` -> ``[{id, kind, name, children: {label: [thunks]}}]``.

    A label line (``condition:``, ``body:``, ...) opens a child list of the last container
    thunk (a while, conditional, ...) that is less indented than the thunks that follow it."""
    root: list[dict] = []
    stack: list[tuple[int, dict, Optional[list]]] = []  # open containers: (indent, thunk, current list)
    pending: Optional[str] = None
    for line in text.splitlines():
        if not line.strip():
            continue
        m = _THUNK.match(line)
        if not m:
            if line.strip().endswith(":"):
                pending = line.strip()[:-1]
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if stack and (pending is not None or stack[-1][2] is None):  # a container's (first) child list
            ind, owner, _ = stack[-1]
            stack[-1] = (ind, owner, owner["children"].setdefault(pending or "", []))
        pending = None
        t = {"id": int(m.group(2)), "kind": m.group(3), "name": m.group(4), "children": {}}
        target = stack[-1][2] if stack and stack[-1][2] is not None else root
        target.append(t)
        if t["kind"] in CONTAINER_THUNKS:
            stack.append((indent, t, None))
    return root


def thunk_metadata_names(text: str) -> dict[int, str]:
    """``thunk_metadata.txt`` -> ``{thunk id: profile annotation (the HLO instruction's name)}``."""
    out = {}
    for m in re.finditer(r'profile_annotation:\s*"([^"]*)"\s*thunk_id:\s*(\d+)', text):
        out[int(m.group(2))] = m.group(1)
    return out


LOOP_THUNKS = {"kWhile", "kConditional", "kSequential", "kCommandBuffer"}  # looked into, not ops themselves
MEMCPY_THUNKS = {"kCopy", "kMemset32BitValue", "kMemzero", "kDynamicSliceFusion", "kDeviceToDevice"}


def _leaves(thunks: list[dict]) -> list[dict]:
    """The thunks that issue device work, looking into loops / conditionals / sequences (a
    nested loop's thunks counted once; a dynamic-slice fusion is one op: the memcpy it wraps)."""
    out = []
    for t in thunks:
        if t["kind"] in LOOP_THUNKS:
            for lst in t["children"].values():
                out.extend(_leaves(lst))
        else:
            out.append(t)
    return out


def thunk_loop_counts(sequence: str, metadata: str = "", while_name: Optional[str] = None) -> dict:
    """Per iteration of the while loop named ``while_name`` (else the one with the most thunks),
    from the GPU thunk sequence: ``kernels`` (kernel launches: :data:`KERNEL_THUNKS`),
    ``memcpys``, ``device_ops`` (every thunk that issues device work, but the ``*Done`` waits),
    ``by_kind``, ``kernel_names`` (the HLO instruction names, from the thunk metadata)."""
    thunks = parse_thunks(sequence)
    names = thunk_metadata_names(metadata)
    whiles = []

    def collect(lst):
        for t in lst:
            if t["kind"] == "kWhile":
                whiles.append(t)
            for c in t["children"].values():
                collect(c)
    collect(thunks)
    if not whiles:
        raise ValueError("no kWhile thunk")
    chosen = None
    if while_name is not None:
        chosen = next((w for w in whiles if names.get(w["id"]) == while_name), None)
    if chosen is None:
        chosen = max(whiles, key=lambda w: len(_leaves([w])))
    flat = _leaves([chosen])
    kinds = Counter(t["kind"] for t in flat)
    kernels = [names.get(t["id"]) or t["name"] for t in flat if t["kind"] in KERNEL_THUNKS]
    return {"kernels": len(kernels), "memcpys": sum(kinds[k] for k in MEMCPY_THUNKS),
            "device_ops": sum(n for k, n in kinds.items() if not k.endswith("Done")),
            "by_kind": dict(kinds), "kernel_names": kernels, "while": names.get(chosen["id"], "")}


# -- PTX -----------------------------------------------------------------------------------

_ATOM = re.compile(r"^\s*(?:@!?%\w+\s+)?((?:atom|red)\.[\w.]+)", re.M)
_ENTRY = re.compile(r"\.entry\s+([\w$]+)\s*\(")


def ptx_atomics(ptx: str) -> dict:
    """``{'cas_loops': n, 'native': {opcode: n}, 'by_entry': {kernel: {'cas': n, 'native': n}}}``
    for one PTX text (an ``atom...cas`` is a compare-and-swap retry loop; the rest are native)."""
    cas, native = 0, Counter()
    by_entry: dict[str, dict] = {}
    entries = [(m.start(), m.group(1)) for m in _ENTRY.finditer(ptx)]
    for m in _ATOM.finditer(ptx):
        op = m.group(1)
        name = next((n for s, n in reversed(entries) if s < m.start()), "")
        e = by_entry.setdefault(name, {"cas": 0, "native": 0})
        if ".cas" in op:
            cas += 1
            e["cas"] += 1
        else:
            native[op] += 1
            e["native"] += 1
    return {"cas_loops": cas, "native": dict(native), "by_entry": by_entry}


def ptx_entries(ptx: str) -> list[str]:
    return _ENTRY.findall(ptx)


def kernel_key(name: str) -> str:
    """An HLO instruction / thunk name and its PTX entry name compare equal under this key
    (the PTX name has ``.`` and ``-`` as ``_``)."""
    return re.sub(r"[^0-9A-Za-z]", "_", name)


def summarize_json(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=False)
