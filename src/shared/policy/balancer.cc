#include "shared/policy/balancer.h"

// Implementation follows in the next commit; nothing calls this yet.
