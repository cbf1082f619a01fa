#include "shared/policy/retry_budget.h"

// Implementation follows in the next commit; nothing calls this yet.
