-- cli.lua: the ltorch command. Runs scripts and chunks, the REPL, and the
-- subcommands (inspect, convert, diff) registered in ltorch.commands.

local M = {}

local function run_chunk(chunk, name, args)
  local fn, err = load(chunk, name)
  if not fn then io.stderr:write("ltorch: ", err, "\n") return 1 end
  local ok, msg = xpcall(fn, debug.traceback, table.unpack(args))
  if not ok then io.stderr:write("ltorch: ", tostring(msg), "\n") return 1 end
  return 0
end

local function run_script(path, args)
  local f, err = io.open(path, "rb")
  -- err is io.open's "path: reason" (luaL_fileresult): the path once
  if not f then io.stderr:write("ltorch: cannot open ", err, "\n") return 1 end
  local src = f:read("a")
  f:close()
  src = src:gsub("^#![^\n]*", "")
  _G.arg = {[0] = path, table.unpack(args)}
  return run_chunk(src, "@" .. path, args)
end

function M.main(argv)
  local a1 = argv[1]
  if a1 == "-e" then
    if not argv[2] then io.stderr:write("ltorch: -e needs an argument\n") return 2 end
    return run_chunk(argv[2], "=(command line)", {table.unpack(argv, 3)})
  end
  local ok, commands = pcall(require, "ltorch.commands")
  if a1 == nil or a1 == "repl" or (ok and commands.COMMANDS and commands.COMMANDS[a1])
     or a1 == "--help" or a1 == "-h" or a1 == "--debug" or a1 == "help" then
    if not ok then io.stderr:write("ltorch: ", tostring(commands), "\n") return 1 end
    return commands.dispatch(argv)
  end
  return run_script(a1, {table.unpack(argv, 2)})
end

return M
