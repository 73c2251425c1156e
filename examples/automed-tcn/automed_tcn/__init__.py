"""automed-tcn: a temporal convolutional network for signals, as an automed plugin.

automed finds this module through the ``automed`` entry point in ``pyproject.toml`` and calls
its hook implementations; nothing else is needed to join the search.
"""

from automed import hookimpl
from automed_tcn.tcn import TCN, TCNArchitecture

__version__ = "0.1.0"
__all__ = ["TCN", "TCNArchitecture", "register_architectures"]


@hookimpl
def register_architectures(register):
    register(TCNArchitecture())
