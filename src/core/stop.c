/* stop.c — see stop.h. */
#include "core/stop.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t stop_flag;

void lm_stop_request(void) { stop_flag = 1; }
int lm_stop_requested(void) { return stop_flag != 0; }
void lm_stop_clear(void) { stop_flag = 0; }

static void on_signal(int sig) {
    stop_flag = 1;
    signal(sig, SIG_DFL);
}

void lm_stop_on_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}
