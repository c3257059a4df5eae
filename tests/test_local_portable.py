"""The installed llama.cpp build runs on x86-64 CPUs without AVX-512 or AMX (issue 14).

Why: a native (``-march=native``) build crashed with SIGSEGV on its first evaluation on an
Intel Xeon VM with AVX-512 and AMX, and pip's wheel cache carries such a build from one CPU to
another.  The README's install commands ask for AVX2/FMA/F16C only.  These tests check that the
build they made is that, on whatever CPU runs the suite (ours have AVX-512, so a native build
here would contain it):

- llama.cpp's own list of the CPU code compiled in names no AVX-512, AMX or AVX-VNNI;
- under QEMU's user-mode emulator playing an Intel Haswell (AVX2, no AVX-512, no AMX) the build
  loads SmolLM2 and answers a chat completion.  A control program with one AVX-512 instruction
  dies of SIGILL there, so an AVX-512 or AMX instruction on the build's path would too.

The emulator comes from Debian's ``qemu-user`` (``.ci/run`` installs it); without it, or
without gcc for the control, the second test is skipped with that reason.
"""

from __future__ import annotations

import platform
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.localmodel import local_extra_missing
from winnow.local import bundled_gguf
from winnow.local.build import build_cpu_code

pytestmark = [
    pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86-64 builds only"),
    pytest.mark.skipif(local_extra_missing() is not None, reason=str(local_extra_missing())),
]

EMULATED_CPU = "Haswell-v4"  # Intel Haswell without TSX: AVX2, FMA, F16C, BMI2; no AVX-512, no AMX

CONTROL_C = r"""
#include <immintrin.h>
#include <stdio.h>
int main(void) {
    volatile float in[16] = {1.0f};
    float out[16];
    __m512 v = _mm512_loadu_ps((const float *)in);
    _mm512_storeu_ps(out, _mm512_add_ps(v, v));
    printf("%.1f\n", out[0]);
    return 0;
}
"""

ANSWER_PY = r"""
import sys
import llama_cpp
model = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=256, n_threads=1, verbose=False)
reply = model.create_chat_completion(
    messages=[{"role": "user", "content": "What is the capital of France? One word."}],
    max_tokens=4, temperature=0,
)
print("REPLY:" + reply["choices"][0]["message"]["content"])
"""


def test_the_installed_build_runs_no_avx512_or_amx_code():
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    assert "AVX2 = 1" in info, info
    assert build_cpu_code(info) == [], f"a build for a newer CPU than the portable set: {info}"


def test_the_build_answers_on_an_emulated_cpu_without_avx512(tmp_path: Path):
    qemu, gcc = shutil.which("qemu-x86_64"), shutil.which("gcc")
    if qemu is None or gcc is None:
        pytest.skip("needs qemu-x86_64 (Debian's qemu-user) and gcc: `apt-get install qemu-user gcc`")
    control = tmp_path / "avx512"
    (tmp_path / "avx512.c").write_text(CONTROL_C)
    subprocess.run([gcc, "-O1", "-mavx512f", str(tmp_path / "avx512.c"), "-o", str(control)], check=True)
    native = subprocess.run([str(control)], capture_output=True, text=True, timeout=30)
    emulated = subprocess.run([qemu, "-cpu", EMULATED_CPU, str(control)], capture_output=True, text=True, timeout=60)
    if native.returncode != 0:  # this CPU has no AVX-512: the control proves nothing here, the emulator does
        assert native.returncode == -signal.SIGILL, native
    assert emulated.returncode == -signal.SIGILL, f"the emulator ran AVX-512 code: {emulated}"

    script = tmp_path / "answer.py"
    script.write_text(ANSWER_PY)
    run = subprocess.run([qemu, "-cpu", EMULATED_CPU, sys.executable, str(script), str(bundled_gguf())],
                         capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, f"{run.returncode}: {run.stderr[-2000:]}"
    reply = run.stdout.split("REPLY:", 1)[1].strip()
    assert reply, run.stdout
