/* Whether fdatasyncs overlap on this disk: 1, 2 and 3 threads, each with its own
 * descriptor of one file, each appending 1,100 bytes and calling fdatasync 1,500 times.
 * Prints syncs/s over all threads and the per-call latency.
 *
 *   cc -O2 -pthread scripts/sync-concurrency-probe.c -o /tmp/sync-conc && /tmp/sync-conc
 *
 * On the reference VM two threads reach ~1.2-1.4x the syncs/s of one, each sync taking
 * ~0.21 ms instead of ~0.13 (BENCHMARKS.md, round 7): flushes mostly serialize, so more
 * syncs in flight would not shorten the wait of a request for its own. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e3+t.tv_nsec/1e6;}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
#define N 1500
static const char*path; static int nthreads;
static double lat[8][N];
static void*run(void*arg){ long id=(long)arg; int fd=open(path,O_RDWR); char buf[1100]; memset(buf,'x',1100);
  for(int i=0;i<N;i++){ double t=now(); pwrite(fd,buf,1100,((off_t)i*nthreads+id)*1100); fdatasync(fd); lat[id][i]=now()-t;} close(fd); return 0;}
int main(int argc,char**argv){ path="/var/tmp/conc-probe";
  for(int round=0;round<2;round++) for(nthreads=1;nthreads<=3;nthreads++){
    int fd=open(path,O_RDWR|O_CREAT|O_TRUNC,0644); char z[65536]={0}; for(int i=0;i<N*3*1100/65536+2;i++) write(fd,z,65536); fsync(fd); close(fd);
    pthread_t th[8]; double t0=now();
    for(long i=0;i<nthreads;i++) pthread_create(&th[i],0,run,(void*)i);
    for(int i=0;i<nthreads;i++) pthread_join(th[i],0);
    double el=now()-t0; static double all[8*N]; int k=0; for(int i=0;i<nthreads;i++) for(int j=0;j<N;j++) all[k++]=lat[i][j];
    qsort(all,k,sizeof(double),cmp);
    printf("threads=%d syncs/s %.0f p50 %.3f p99 %.3f ms\n",nthreads,k/el*1e3,all[k/2],all[k*99/100]);
    unlink(path);}
}
