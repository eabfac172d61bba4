// x86 vector intrinsics for the kernels' AVX-512 paths (each keeps a plain C++ fallback).
//
// GCC 12's AVX-512 headers initialize their "undefined" vectors from themselves, which
// -Wmaybe-uninitialized / -Wuninitialized then report at every inlined use (GCC bug 105593); the
// code is fine. The two warnings are off from here to the end of the including file, so include
// this header in .cc files only.
#pragma once

#include <immintrin.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
