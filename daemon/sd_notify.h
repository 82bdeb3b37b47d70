// The sd_notify protocol, written directly (no libsystemd): one datagram to $NOTIFY_SOCKET
// ("READY=1", "STATUS=...", "WATCHDOG=1", "RELOADING=1", "STOPPING=1"). A no-op when the
// variable is unset (not started by systemd).
#pragma once

#include <string>

namespace momentkv::daemon {

// Sends `state`; returns false when there is no NOTIFY_SOCKET or the send failed (also when the
// manager's queue stays full for 2 s: the caller is never blocked longer).
bool sd_notify(const std::string& state);

}  // namespace momentkv::daemon
