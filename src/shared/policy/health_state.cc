#include "shared/policy/health_state.h"

// Implementation follows in the next commit; nothing calls this yet.
