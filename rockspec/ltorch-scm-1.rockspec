-- luarocks --lua-version 5.4 make rockspec/ltorch-scm-1.rockspec
rockspec_format = "3.0"
package = "ltorch"
version = "scm-1"
source = { url = "git+file:///dev/null" }
description = {
  summary = "Lua 5.4-scriptable model I/O runtime: tensors, nn modules, PyTorch/safetensors/NumPy/TorchSharp checkpoints",
  license = "MIT",
}
dependencies = { "lua >= 5.4, < 5.5" }
external_dependencies = {
  LIBZIP = { header = "zip.h", library = "zip" },
  ZLIB = { header = "zlib.h", library = "z" },
  CJSON = { header = "cjson/cJSON.h", library = "cjson" },
  OPENBLAS = { library = "openblas" },
}
test_dependencies = { "busted" }
test = { type = "busted" }
build = {
  type = "builtin",
  modules = {
    ["ltorch.core"] = {
      sources = {
        "src/dtype.c", "src/storage.c", "src/tensor.c", "src/ltorch.c", "src/lops.c", "src/lio.c",
      },
      defines = { "_GNU_SOURCE" },
      incdirs = { "$(LIBZIP_INCDIR)", "$(ZLIB_INCDIR)", "$(CJSON_INCDIR)", "$(CJSON_INCDIR)/cjson",
                  "/usr/include/x86_64-linux-gnu/openblas-pthread" },
      libdirs = { "$(LIBZIP_LIBDIR)", "$(ZLIB_LIBDIR)", "$(CJSON_LIBDIR)", "$(OPENBLAS_LIBDIR)" },
      libraries = { "zip", "z", "cjson", "openblas", "m" },
    },
    ["ltorch"] = "lua/ltorch/init.lua",
    ["ltorch.format"] = "lua/ltorch/format.lua",
    ["ltorch.cli"] = "lua/ltorch/cli.lua",
  },
  install = { bin = { ltorch = "bin/ltorch" } },
}
