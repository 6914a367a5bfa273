// foneaictl: inspect and control a running foneai-bridge through its control socket.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// A SIGPIPE when stdout is a closed pipe (`foneaictl stats --follow | head`) should end quietly.
signal(SIGPIPE, SIG_IGN)

await Foneaictl.runMain()
