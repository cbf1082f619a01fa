#include "shared/policy/lease.h"

// Implementation follows in the next commit; nothing calls this yet.
