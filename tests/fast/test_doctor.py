"""doctor's names for users' containers: the ones DockerSpawner gives them, or it would miss (or blame) one."""

import pytest
from dockerspawner import DockerSpawner

from campushub.doctor import container_name


@pytest.mark.parametrize("user", ["ada", "ada.lovelace@pitt.edu", "a-b_c", "x9"])
@pytest.mark.parametrize("server", ["", "gpu", "My-Lab"])
def test_container_names_are_dockerspawners(user, server):
    escape = DockerSpawner._escape
    expected = "jupyter-" + escape(user) + (f"--{escape(server.lower())}" if server else "")
    assert container_name(user, server) == expected
