// Edits momentkvd.toml in place (`momentkv tune --apply`): sets a few keys of one table and keeps
// everything else byte for byte — comments, blank lines, key order, indentation and the trailing
// comment of an edited line (kept at its column when the value's width changes).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace momentkv {

// key -> TOML literal, e.g. {"decode_budget", "256"}, {"policy", "\"moment\""}.
using ConfigValues = std::vector<std::pair<std::string, std::string>>;

// Returns `text` with each key of `values` set in [table]: an existing `key = value` line gets
// the new value; a missing key is added after the table's last key (before the comment lines
// that lead into the next table); a missing table is appended. Keys of other tables and text in
// comments are never touched. Preconditions: bare keys, single-line valid TOML values, a table
// defined at most once. Throws ConfigError when one fails or when a value to replace spans
// several lines (multi-line string or array).
std::string set_config_values(const std::string& text, const std::string& table,
                              const ConfigValues& values);

// Reads the config file at `path` (following a symlink), sets the values, checks the result with
// parse_daemon_config, and replaces the file atomically: a temporary file in the same directory
// with the original's mode and owner, fsync, rename, fsync of the directory. Throws ConfigError
// naming the file and the cause, leaving the original untouched.
void write_config_values(const std::string& path, const std::string& table,
                         const ConfigValues& values);

}  // namespace momentkv
