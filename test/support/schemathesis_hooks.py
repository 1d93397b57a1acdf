"""Schemathesis hooks for the task API's fuzzing (test/dapr/openapi-fuzz.test.ts).

Two rules of the API are beyond what OpenAPI can state, and generated cases
that break them are left out here:

- A status change carries its status in the JSON body or as ?status=, and
  needs one of the two (both are optional in the document). The service's 400
  for neither, naming `status`, is tested in test/dapr/task-service.test.ts.
- A due date is in the future (the document says so in words; JSON Schema has
  no bound on a date-time against the clock). The service's 400 for one in the
  past, naming `due_at`, is tested in test/dapr/due-dates.test.ts.
"""

from datetime import datetime, timezone

import schemathesis
from schemathesis.core import NOT_SET


def _due_in_past(body):
    if not isinstance(body, dict) or not isinstance(body.get("due_at"), str):
        return False
    try:
        due = datetime.fromisoformat(body["due_at"].replace("Z", "+00:00"))
    except ValueError:
        return False
    if due.tzinfo is None:
        return False
    return due <= datetime.now(timezone.utc)


@schemathesis.hook
def filter_case(context, case):
    operation = context.operation
    if operation is None:
        return True
    if _due_in_past(case.body):
        return False
    if operation.method.upper() != "PUT" or not operation.path.endswith("/status"):
        return True
    # A JSON null is no body, as the document says (nullable) and the service takes it.
    has_body = case.body is not NOT_SET and case.body is not None
    return has_body or "status" in (case.query or {})
