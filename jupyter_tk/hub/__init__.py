"""Hub side of jupyter-tk: cluster inventory, policy, image catalog, spawn form and spawners."""
