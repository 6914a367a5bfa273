#ifndef FONEAI_CSYSTEMD_SHIM_H
#define FONEAI_CSYSTEMD_SHIM_H
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#endif
