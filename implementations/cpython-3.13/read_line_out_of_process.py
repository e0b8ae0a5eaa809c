#!/usr/bin/env python3
"""Read a running interpreter's current line from outside the process.

Usage::

    python3 implementations/cpython-3.13/read_line_out_of_process.py \
        --python PATH/TO/python3.13 [--samples 20] [--json OUT]

This is what profilers such as py-spy do, done only with the offsets the
interpreter publishes in ``_Py_DebugOffsets`` (the first field of
``_PyRuntime``): it starts ``--python`` running a known busy loop, finds
``_PyRuntime`` through the executable's symbol table and the process's
memory map, reads the offsets, and walks runtime -> interpreter -> thread
-> frame -> code object -> location table with ``process_vm_readv``.  A
sample passes when the code object is the loop's function, the first
code unit at ``co_code_adaptive`` is a RESUME instruction (so the offset
of the bytecode inside the code object is right) and the line decoded
for the current instruction is one of the loop's lines.

PEP 9999 removes ``co_extra`` from ``PyCodeObject``, which moves
``co_code_adaptive`` down (12 bytes on x86-64: the pointer and the padding
before it).  The script also reports what a tool with the stock 3.13
offset built in would read there, to show why tools must take the offsets
from the process: ``resume_found_at_stock_offset`` counts the samples in
which that offset held a RESUME instruction (all of them on an unpatched
build, none on a patched one).

Exit status 0 when every sample passed, 1 otherwise; ``--json`` writes
the samples and the offsets used.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

TARGET = """\
import dis, sys
ops = dis._specialized_opmap if hasattr(dis, "_specialized_opmap") else {}
resume = [dis.opmap["RESUME"]] + [v for k, v in ops.items()
                                  if k.startswith("RESUME")]
def spin():
    n = 0
    while True:
        n += 1
        n -= 1
lines = sorted({ln for _, _, ln in spin.__code__.co_lines()
                if ln is not None and ln > spin.__code__.co_firstlineno})
print(" ".join(map(str, resume)), "|", " ".join(map(str, lines)),
      flush=True)
spin()
"""

#: Field names of _Py_DebugOffsets (3.13) after the 8-byte cookie, in
#: order; each is a uint64.
DEBUG_OFFSET_FIELDS = (
    "version",
    "free_threaded",
    "runtime_state.size",
    "runtime_state.finalizing",
    "runtime_state.interpreters_head",
    "interpreter_state.size",
    "interpreter_state.id",
    "interpreter_state.next",
    "interpreter_state.threads_head",
    "interpreter_state.gc",
    "interpreter_state.imports_modules",
    "interpreter_state.sysdict",
    "interpreter_state.builtins",
    "interpreter_state.ceval_gil",
    "interpreter_state.gil_runtime_state",
    "interpreter_state.gil_runtime_state_enabled",
    "interpreter_state.gil_runtime_state_locked",
    "interpreter_state.gil_runtime_state_holder",
    "thread_state.size",
    "thread_state.prev",
    "thread_state.next",
    "thread_state.interp",
    "thread_state.current_frame",
    "thread_state.thread_id",
    "thread_state.native_thread_id",
    "thread_state.datastack_chunk",
    "thread_state.status",
    "interpreter_frame.size",
    "interpreter_frame.previous",
    "interpreter_frame.executable",
    "interpreter_frame.instr_ptr",
    "interpreter_frame.localsplus",
    "interpreter_frame.owner",
    "code_object.size",
    "code_object.filename",
    "code_object.name",
    "code_object.qualname",
    "code_object.linetable",
    "code_object.firstlineno",
    "code_object.argcount",
    "code_object.localsplusnames",
    "code_object.localspluskinds",
    "code_object.co_code_adaptive",
    "pyobject.size",
    "pyobject.ob_type",
    "type_object.size",
    "type_object.tp_name",
    "type_object.tp_repr",
    "type_object.tp_flags",
    "tuple_object.size",
    "tuple_object.ob_item",
    "tuple_object.ob_size",
    "list_object.size",
    "list_object.ob_item",
    "list_object.ob_size",
    "dict_object.size",
    "dict_object.ma_keys",
    "dict_object.ma_values",
    "float_object.size",
    "float_object.ob_fval",
    "long_object.size",
    "long_object.lv_tag",
    "long_object.ob_digit",
    "bytes_object.size",
    "bytes_object.ob_size",
    "bytes_object.ob_sval",
    "unicode_object.size",
    "unicode_object.state",
    "unicode_object.length",
    "unicode_object.asciiobject_size",
    "gc.size",
    "gc.collecting",
)
COOKIE = b"xdebugpy"
#: offsetof(PyCodeObject, co_code_adaptive) in stock 3.13.15 on x86-64
#: (key: free-threaded build?), what a tool with built-in offsets uses.
STOCK_CO_CODE_ADAPTIVE = {False: 200, True: 216}


class ReadError(Exception):
    """Memory of the target could not be read (it moved on, or exited)."""


class iovec(ctypes.Structure):
    """struct iovec for process_vm_readv."""

    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.process_vm_readv.restype = ctypes.c_ssize_t
_libc.process_vm_readv.argtypes = [
    ctypes.c_int,
    ctypes.POINTER(iovec),
    ctypes.c_ulong,
    ctypes.POINTER(iovec),
    ctypes.c_ulong,
    ctypes.c_ulong,
]


class Remote:
    """Reads another process's memory."""

    def __init__(self, pid: int) -> None:
        """Remember the process id."""
        self.pid = pid

    def read(self, address: int, size: int) -> bytes:
        """Return ``size`` bytes at ``address`` in the target."""
        buf = ctypes.create_string_buffer(size)
        local = iovec(ctypes.cast(buf, ctypes.c_void_p), size)
        remote = iovec(ctypes.c_void_p(address), size)
        got = _libc.process_vm_readv(
            self.pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0
        )
        if got != size:
            err = ctypes.get_errno()
            raise ReadError(
                f"read {size} bytes at {address:#x}: "
                f"{os.strerror(err) if got < 0 else 'short'}"
            )
        return buf.raw

    def u64(self, address: int) -> int:
        """Read a uint64 (a pointer)."""
        return int(struct.unpack("<Q", self.read(address, 8))[0])

    def i32(self, address: int) -> int:
        """Read an int."""
        return int(struct.unpack("<i", self.read(address, 4))[0])


def runtime_address(pid: int, python: Path) -> int:
    """Return the address of ``_PyRuntime`` in the running process."""
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    objects = [python.resolve()]
    for line in maps:
        parts = line.split()
        if len(parts) >= 6 and "libpython3" in parts[5]:
            objects.insert(0, Path(parts[5]))
    for obj in objects:
        nm = subprocess.run(
            ["nm", "--defined-only", str(obj)],
            capture_output=True,
            text=True,
            check=False,
        )
        symbol = [
            ln.split()[0]
            for ln in nm.stdout.splitlines()
            if ln.endswith(" _PyRuntime")
        ]
        if not symbol:
            continue
        value = int(symbol[0], 16)
        for line in maps:
            parts = line.split()
            if (
                len(parts) >= 6
                and Path(parts[5]) == obj
                and int(parts[2], 16) == 0
            ):
                base = int(parts[0].split("-")[0], 16)
                return base + value
    raise SystemExit(
        f"read_line_out_of_process.py: no _PyRuntime symbol in {python} or "
        "its libpython; use an unstripped build (build.py makes one)"
    )


def debug_offsets(remote: Remote, runtime: int) -> dict[str, int]:
    """Read and name the fields of _Py_DebugOffsets."""
    raw = remote.read(runtime, 8 + 8 * len(DEBUG_OFFSET_FIELDS))
    if raw[:8] != COOKIE:
        raise SystemExit(
            "read_line_out_of_process.py: _PyRuntime does not start with "
            f"the {COOKIE!r} cookie; not a CPython 3.13 process"
        )
    values = struct.unpack(f"<{len(DEBUG_OFFSET_FIELDS)}Q", raw[8:])
    return dict(zip(DEBUG_OFFSET_FIELDS, values, strict=True))


def varint(data: bytes, pos: int) -> tuple[int, int]:
    """Decode an unsigned varint of the location table (6-bit chunks)."""
    b = data[pos]
    pos += 1
    value = b & 63
    shift = 0
    while b & 64:
        b = data[pos]
        pos += 1
        shift += 6
        value |= (b & 63) << shift
    return value, pos


def line_of(linetable: bytes, firstlineno: int, index: int) -> int | None:
    """Line of code unit ``index`` from a 3.11+ location table."""
    line = firstlineno
    address = 0
    pos = 0
    while pos < len(linetable):
        first = linetable[pos]
        pos += 1
        code = (first >> 3) & 15
        length = (first & 7) + 1
        delta: int | None = 0
        if code == 15:
            delta = None
        elif code == 14:
            v, pos = varint(linetable, pos)
            delta = -(v >> 1) if v & 1 else v >> 1
            for _ in range(3):
                _, pos = varint(linetable, pos)
        elif code == 13:
            v, pos = varint(linetable, pos)
            delta = -(v >> 1) if v & 1 else v >> 1
        elif code >= 10:
            delta = code - 10
            pos += 2
        else:
            pos += 1
        if delta is not None:
            line += delta
        if address <= index < address + length:
            return None if delta is None else line
        address += length
    return None


def ascii_string(remote: Remote, off: dict[str, int], obj: int) -> str:
    """Read a compact ASCII str object."""
    length = remote.u64(obj + off["unicode_object.length"])
    data = remote.read(
        obj + off["unicode_object.asciiobject_size"], min(length, 256)
    )
    return data.decode("ascii", "replace")


def sample(
    remote: Remote, off: dict[str, int], runtime: int
) -> dict[str, object]:
    """Read the main thread's innermost Python frame once."""
    interp = remote.u64(runtime + off["runtime_state.interpreters_head"])
    tstate = remote.u64(interp + off["interpreter_state.threads_head"])
    frame = 0
    while tstate:
        frame = remote.u64(tstate + off["thread_state.current_frame"])
        if frame:
            break
        tstate = remote.u64(tstate + off["thread_state.next"])
    if not frame:
        raise ReadError("no thread has a current frame")
    code = remote.u64(frame + off["interpreter_frame.executable"])
    instr = remote.u64(frame + off["interpreter_frame.instr_ptr"])
    bytecode = code + off["code_object.co_code_adaptive"]
    name = ascii_string(
        remote, off, remote.u64(code + off["code_object.qualname"])
    )
    firstlineno = remote.i32(code + off["code_object.firstlineno"])
    table = remote.u64(code + off["code_object.linetable"])
    size = remote.u64(table + off["bytes_object.ob_size"])
    linetable = remote.read(table + off["bytes_object.ob_sval"], size)
    index = (instr - bytecode) // 2
    return {
        "function": name,
        "firstlineno": firstlineno,
        "instruction": index,
        "line": line_of(linetable, firstlineno, index),
        "first_opcode": remote.read(bytecode, 1)[0],
        "first_opcode_at_stock_offset": remote.read(
            code + STOCK_CO_CODE_ADAPTIVE[bool(off["free_threaded"])], 1
        )[0],
    }


def main(argv: list[str] | None = None) -> int:
    """Start the target, sample it, report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--python",
        required=True,
        type=Path,
        help="interpreter to start and observe",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=20,
        help="how many samples (default: %(default)s)",
    )
    parser.add_argument(
        "--json", type=Path, help="write the samples and offsets here"
    )
    args = parser.parse_args(argv)
    if not args.python.is_file():
        print(
            f"read_line_out_of_process.py: {args.python} does not exist; "
            "build it with build.py first",
            file=sys.stderr,
        )
        return 2
    proc = subprocess.Popen(
        [str(args.python), "-I", "-S", "-c", TARGET],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        header = proc.stdout.readline()
        if not header:
            print(
                "read_line_out_of_process.py: the target exited early",
                file=sys.stderr,
            )
            return 1
        resume_text, lines_text = header.split("|")
        resume_ops = {int(x) for x in resume_text.split()}
        loop_lines = {int(x) for x in lines_text.split()}
        time.sleep(0.2)
        remote = Remote(proc.pid)
        runtime = runtime_address(proc.pid, args.python)
        off = debug_offsets(remote, runtime)
        samples: list[dict[str, object]] = []
        attempts = 0
        while len(samples) < args.samples and attempts < args.samples * 20:
            attempts += 1
            try:
                s = sample(remote, off, runtime)
            except (ReadError, IndexError):
                continue  # the frame changed under us: read again
            s["ok"] = (
                s["function"] == "spin"
                and s["first_opcode"] in resume_ops
                and s["line"] in loop_lines
            )
            samples.append(s)
            time.sleep(0.01)
    finally:
        proc.kill()
        proc.wait()
    passed = sum(1 for s in samples if s["ok"])
    stock_ok = sum(
        1 for s in samples if s["first_opcode_at_stock_offset"] in resume_ops
    )
    report = {
        "python": args.python.name,
        "free_threaded": bool(off["free_threaded"]),
        "offsets": {
            k: off[k]
            for k in (
                "code_object.size",
                "code_object.co_code_adaptive",
                "code_object.linetable",
                "code_object.firstlineno",
                "interpreter_state.size",
                "interpreter_state.threads_head",
                "thread_state.current_frame",
            )
        },
        "loop_lines": sorted(loop_lines),
        "samples": len(samples),
        "passed": passed,
        "resume_found_at_stock_offset": stock_ok,
        "lines_seen": sorted(
            {s["line"] for s in samples if isinstance(s["line"], int)}
        ),
    }
    text = json.dumps(report, indent=2, sort_keys=True)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if samples and passed == len(samples) else 1


if __name__ == "__main__":
    sys.exit(main())
