# Helpers live in service_support (a unique module name: tests/container has a conftest too, and test modules
# importing "conftest" would get whichever was imported first). Importing its fixtures here registers them.
from service_support import *  # noqa: F403
from service_support import (  # noqa: F401
    captured_output,
    database,
    json_logging,
    own_postgres,
    postgres,
    service_process,
)
