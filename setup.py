"""Build hook for the one compiled piece: the BlazeFace anchor decode + weighted NMS.

Everything else is declared in pyproject.toml. If Cython or a compiler is missing the
package still installs; ``openvtuber.models.decode`` then uses its numpy fallback.
"""
from setuptools import Extension, setup

ext_modules = []
try:
    import numpy
    from Cython.Build import cythonize

    ext_modules = cythonize(
        [Extension("openvtuber.models._decode", ["models/_decode.pyx"],
                   include_dirs=[numpy.get_include()],
                   extra_compile_args=["-O3"])],
        compiler_directives={"language_level": 3, "boundscheck": False, "wraparound": False,
                             "cdivision": True, "initializedcheck": False},
        quiet=True,
    )
except ImportError:  # no Cython/numpy at build time: pure-numpy fallback only
    pass

setup(ext_modules=ext_modules)
