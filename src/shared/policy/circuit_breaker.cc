#include "shared/policy/circuit_breaker.h"

// Implementation follows in the next commit; nothing calls this yet.
