// Invariant checks. STRATA_CHECK is always on (cold paths); STRATA_DCHECK only
// in debug builds (hot loops). Neither is used for untrusted input: that
// returns a Status.
#pragma once

#include <cstdio>
#include <cstdlib>

#define STRATA_CHECK(cond)                                                              \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "strata: check failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

#ifdef NDEBUG
#define STRATA_DCHECK(cond) \
  do {                      \
  } while (0)
#else
#define STRATA_DCHECK(cond) STRATA_CHECK(cond)
#endif
