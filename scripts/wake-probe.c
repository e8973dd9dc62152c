/* Thread wake-up latency of this machine: a round trip over two pipes between two
 * threads (two wake-ups), back to back or after an idle gap, as a server thread meets it
 * when a request arrives at an idle process.
 *
 *   cc -O2 -pthread scripts/wake-probe.c -o /tmp/wake-probe && /tmp/wake-probe 10000
 *
 * The argument is the idle gap in microseconds before each of 2,000 round trips. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 2000

static int to_peer[2], from_peer[2];

static double micros(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void *echo(void *unused) {
    char byte;
    (void)unused;
    while (read(to_peer[0], &byte, 1) == 1) {
        if (write(from_peer[1], &byte, 1) != 1) break;
    }
    return NULL;
}

static int ascending(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int gap = argc > 1 ? atoi(argv[1]) : 0;
    static double took[ROUNDS];
    pthread_t peer;
    if (pipe(to_peer) || pipe(from_peer) || pthread_create(&peer, NULL, echo, NULL)) {
        perror("set-up");
        return 1;
    }
    for (int i = 0; i < ROUNDS; i++) {
        char byte = 'x';
        if (gap) usleep(gap);
        double started = micros();
        if (write(to_peer[1], &byte, 1) != 1 || read(from_peer[0], &byte, 1) != 1) {
            perror("round trip");
            return 1;
        }
        took[i] = micros() - started;
    }
    qsort(took, ROUNDS, sizeof took[0], ascending);
    printf("idle gap %d us: round trip p50 %.1f, p90 %.1f, p99 %.1f us\n", gap,
           took[ROUNDS / 2], took[ROUNDS * 9 / 10], took[ROUNDS * 99 / 100]);
    return 0;
}
