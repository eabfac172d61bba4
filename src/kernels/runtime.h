// The kernel runtime r1 sets up before it does anything: libgomp's idle spin, which OpenBLAS
// kernels run and huge pages for malloc's heap. The libraries read these settings from the
// environment while they load, before main, so a program applies them by starting itself again
// once (RestartWithRuntimeSettings).
#pragma once

#include <string>

namespace r1::kernels {

// The core OpenBLAS is running ("SkylakeX", "Haswell", "Prescott", ...).
std::string BlasCoreName();

// The OPENBLAS_CORETYPE this process should be started with, or an empty string to keep the
// library's own choice: "SKYLAKEX" when the library chose a core older than AVX2 (Prescott, Core2,
// Penryn, Dunnington, Nehalem, Atom, Sandybridge, ...) but the CPU has AVX-512 F/CD/BW/DQ/VL;
// "HASWELL" when it has AVX2 and FMA only. Never a core the CPU cannot run.
std::string BetterBlasCoreType();

// Call first thing in main. Sets, unless the user set them:
//  * GOMP_SPINCOUNT=10000 (unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set). How long an idle
//    OpenMP thread spins before it sleeps decides speed on a shared 2-core machine: spinning
//    forever (libgomp's default, or ACTIVE) made training ~15x slower beside two busy processes;
//    never spinning (PASSIVE) halved decode on a quiet machine (each token crosses hundreds of
//    parallel regions). A short spin measured best in both.
//  * OPENBLAS_CORETYPE=BetterBlasCoreType() (unless OPENBLAS_CORETYPE is set and not empty). An
//    old OpenBLAS takes a new CPU for an old one: Debian 12's 0.3.21 takes this project's AVX-512
//    machine (Intel family 6, model 207) for an SSE3 "Prescott"; its AVX-512 kernels ran a
//    training step 2.6x faster.
//  * glibc.malloc.hugetlb=1 in GLIBC_TUNABLES (unless it names glibc.malloc.hugetlb): malloc
//    asks for transparent huge pages (madvise) on the heap that holds the weights, gradients and
//    activations, where the kernel grants them only on request (THP "madvise", Debian's default).
//    A rollout streams every weight matrix each decode step: the GRPO benchmark model's 46 MB are
//    ~11,000 4 KiB pages, 23 huge ones; its rollout ran ~5 % faster (A B, 3 rounds). glibc before
//    2.35 ignores the tunable.
// and then, if it set anything, replaces the process with a fresh start of the same program and
// arguments. Returns only when nothing needed setting, or if the restart failed (then the program
// runs as it is).
void RestartWithRuntimeSettings(char** argv);

}  // namespace r1::kernels
