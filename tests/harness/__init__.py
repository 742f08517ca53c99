"""The test harness (also used by the benchmarks): real hubs started with ``campushub up``, and clients for them.

Not shipped with campushub: it lives beside the tests and needs the ``test`` extras. Each module holds one
concern; the names are all here, as ``from harness import Hub``.
"""

from .accounts import (
    HUB_ACCOUNT,
    account_environment,
    as_account,
    ensure_account,
    ensure_user,
    kill_processes_of,
    require_root,
)
from .browser import ARTIFACTS, CHROMIUM_FLAGS, DOOR_CHROMIUM_FLAGS
from .compose import Compose
from .doors import HEADER_LOG, DoorClient, own_config, raw_get, start_through_door, wait_listening
from .engines import LAB_IMAGE, podman, remove_volumes
from .env import CAMPUSHUB, IN_CI, REPO
from .hubs import Hub, HubClient, last_end
from .kernels import KERNELS_PARENT, OWN_MODULES_ONLY, Kernel, run_in_kernel
from .network import (
    RESOLVE_TEST_DOMAIN,
    TEST_DOMAIN,
    SourceAddress,
    free_port,
    free_ports,
    proxies_on,
    resolve_test_domain,
)
from .saml_idp import SamlIdp
from .sites import EMBEDDED, EXTERNAL, GROUP, PROXY_SECRET, SECRET_ENV, base_site, guarded, needs_root
from .slurm import cluster_report, job_state, occupy_node, scripts_slurm, slurm
from .stubs import StubUser

__all__ = [
    "ARTIFACTS",
    "CAMPUSHUB",
    "CHROMIUM_FLAGS",
    "DOOR_CHROMIUM_FLAGS",
    "EMBEDDED",
    "EXTERNAL",
    "GROUP",
    "HEADER_LOG",
    "HUB_ACCOUNT",
    "IN_CI",
    "KERNELS_PARENT",
    "LAB_IMAGE",
    "OWN_MODULES_ONLY",
    "PROXY_SECRET",
    "REPO",
    "RESOLVE_TEST_DOMAIN",
    "SECRET_ENV",
    "TEST_DOMAIN",
    "Compose",
    "DoorClient",
    "Hub",
    "HubClient",
    "Kernel",
    "SamlIdp",
    "SourceAddress",
    "StubUser",
    "account_environment",
    "as_account",
    "base_site",
    "cluster_report",
    "ensure_account",
    "ensure_user",
    "free_port",
    "free_ports",
    "guarded",
    "job_state",
    "kill_processes_of",
    "last_end",
    "needs_root",
    "occupy_node",
    "own_config",
    "podman",
    "proxies_on",
    "raw_get",
    "remove_volumes",
    "require_root",
    "resolve_test_domain",
    "run_in_kernel",
    "scripts_slurm",
    "slurm",
    "start_through_door",
    "wait_listening",
]
