/* Ways to make a small journal write durable on this disk, back to back (or after an idle
 * gap): pwrite + fdatasync (what the journal does), pwritev2 with RWF_DSYNC, O_DIRECT
 * 4 KiB blocks + fdatasync, and O_DIRECT|O_DSYNC. 2,000 x 1,100-byte units into a file
 * written with zeros and synced first (as the journal's space is), twice, alternating.
 *
 *   cc -O2 scripts/sync-methods-probe.c -o /tmp/sync-methods && /tmp/sync-methods /var/tmp [IDLE_US]
 *
 * On the reference VM all four are within 0.12-0.16 ms at p50 (BENCHMARKS.md, round 7):
 * its disk has a volatile write cache and no FUA, so every variant ends in a cache flush. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e3+t.tv_nsec/1e6;}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
#define N 2000
#define UNIT 1100
int main(int argc,char**argv){
  const char*dir=argc>1?argv[1]:"/var/tmp"; int idle_us=argc>2?atoi(argv[2]):0;
  char path[256]; snprintf(path,sizeof path,"%s/dsync-probe-%d",dir,getpid());
  size_t size=(size_t)N*4096+8192;
  const char*names[]={"pwrite+fdatasync","pwritev2 RWF_DSYNC","O_DIRECT 4K+fdatasync","O_DIRECT|O_DSYNC 4K"};
  for(int round=0;round<2;round++)
  for(int v=0;v<4;v++){
    int flags=O_RDWR|O_CREAT|O_TRUNC; if(v>=2) flags|=O_DIRECT; if(v==3) flags|=O_DSYNC;
    int fd=open(path,flags,0644); if(fd<0){perror("open");return 1;}
    char*zero; posix_memalign((void**)&zero,4096,1<<20); memset(zero,0,1<<20);
    for(size_t o=0;o<size;o+=1<<20) pwrite(fd,zero,1<<20,o);
    fsync(fd);
    char*buf; posix_memalign((void**)&buf,4096,8192); memset(buf,'x',8192);
    double lat[N];
    for(int i=0;i<N;i++){
      if(idle_us) usleep(idle_us);
      double t=now();
      if(v==0){ pwrite(fd,buf,UNIT,(off_t)i*UNIT); fdatasync(fd);}
      else if(v==1){ struct iovec io={buf,UNIT}; pwritev2(fd,&io,1,(off_t)i*UNIT,RWF_DSYNC);}
      else { off_t off=((off_t)i*UNIT)&~4095L; size_t end=(size_t)i*UNIT+UNIT; size_t len=((end+4095)&~4095UL)-off;
             if(pwrite(fd,buf,len,off)<0){perror("pwrite");return 1;} if(v==2) fdatasync(fd);}
      lat[i]=now()-t;
    }
    close(fd); unlink(path);
    double sum=0; for(int i=0;i<N;i++) sum+=lat[i];
    qsort(lat,N,sizeof(double),cmp);
    printf("idle=%dus %-24s p50 %.3f p90 %.3f p99 %.3f mean %.3f ms\n",idle_us,names[v],lat[N/2],lat[N*9/10],lat[N*99/100],sum/N);
  }
  return 0;
}
