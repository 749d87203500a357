"""What either side of the trust boundary may import: neutral modules that import nothing
from segrade outside this package (the protocol, conventions, names, the manifest format)."""
