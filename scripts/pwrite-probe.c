// pwrite-probe: mean cost of appending SIZE bytes to each of N files in turn, ROUNDS times
// (BENCHMARKS.md, round 9: the segment copies of a wide stream).
//   gcc -O2 -o /tmp/pwrite-probe scripts/pwrite-probe.c && /tmp/pwrite-probe 1000 1100 30 DIR
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec/1e9;}
int main(int argc,char**argv){
  if(argc<5){fprintf(stderr,"usage: pwrite-probe N SIZE ROUNDS DIR\n");return 2;}
  int n=atoi(argv[1]); int sz=atoi(argv[2]); int rounds=atoi(argv[3]); const char*dir=argv[4];
  int*fd=malloc(n*sizeof(int)); long*off=calloc(n,sizeof(long)); char buf[1<<20]; memset(buf,7,sizeof buf);
  char p[512];
  if(sz<1||(size_t)sz>sizeof buf){fprintf(stderr,"usage: pwrite-probe N SIZE(<=1MiB) ROUNDS DIR\n");return 2;}
  for(int i=0;i<n;i++){snprintf(p,sizeof p,"%s/f%d",dir,i);fd[i]=open(p,O_RDWR|O_CREAT|O_TRUNC,0644);}
  double t0=now();
  for(int r=0;r<rounds;r++) for(int i=0;i<n;i++){ pwrite(fd[i],buf,sz,off[i]); off[i]+=sz; }
  double t=now()-t0;
  printf("n=%d sz=%d: %.2f us per pwrite\n",n,sz,t*1e6/(n*(double)rounds));
  return 0;}
