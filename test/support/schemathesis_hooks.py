"""Schemathesis hooks for the task API's fuzzing (test/dapr/openapi-fuzz.test.ts).

One rule of the API crosses request locations, which OpenAPI cannot state: a
status change carries its status in the JSON body or as ?status=, and needs one
of the two (both are optional in the document). Cases with neither are left out
of generation here; the service's 400 for them, naming `status`, is tested in
test/dapr/task-service.test.ts.
"""

import schemathesis
from schemathesis.core import NOT_SET


@schemathesis.hook
def filter_case(context, case):
    operation = context.operation
    if operation is None or operation.method.upper() != "PUT" or not operation.path.endswith("/status"):
        return True
    # A JSON null is no body, as the document says (nullable) and the service takes it.
    has_body = case.body is not NOT_SET and case.body is not None
    return has_body or "status" in (case.query or {})
