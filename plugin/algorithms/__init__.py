"""The toolbox algorithms, one file each; the provider lists them."""
