/* A small NFSv3 client on libnfs for the tests of yonder-nfs: one
 * operation per run, on a server given by port, as a given uid.
 *
 *   nfs_driver PORT UID OP ARGS...
 *
 * Prints what the operation returns; on failure prints libnfs's error on
 * stderr and exits 1. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <nfsc/libnfs.h>

static struct nfs_context *nfs;

static int fail(const char *what, int rc) {
    fprintf(stderr, "%s: %d %s\n", what, rc, nfs_get_error(nfs));
    return 1;
}

static int print_stat(const char *path) {
    struct nfs_stat_64 st;
    int rc = nfs_lstat64(nfs, path, &st);
    if (rc < 0) return fail("lstat", rc);
    printf("ino=%" PRIu64 " mode=%o nlink=%" PRIu64 " uid=%" PRIu64 " gid=%" PRIu64
           " size=%" PRIu64 " atime=%" PRIu64 " mtime=%" PRIu64 " mtime_nsec=%" PRIu64 "\n",
           st.nfs_ino, (unsigned)st.nfs_mode, st.nfs_nlink, st.nfs_uid, st.nfs_gid,
           st.nfs_size, st.nfs_atime, st.nfs_mtime, st.nfs_mtime_nsec);
    return 0;
}

static int write_at(const char *path, const char *offset, const char *data, int commit) {
    struct nfsfh *fh;
    int rc = nfs_open(nfs, path, O_WRONLY | O_CREAT, &fh);
    if (rc < 0) rc = nfs_creat(nfs, path, 0644, &fh);
    if (rc < 0) return fail("open", rc);
    rc = nfs_pwrite(nfs, fh, strtoull(offset, NULL, 10), strlen(data), data);
    if (rc < 0) return fail("pwrite", rc);
    if (commit) {
        rc = nfs_fsync(nfs, fh);
        if (rc < 0) return fail("fsync", rc);
    }
    nfs_close(nfs, fh);
    printf("wrote %d\n", rc);
    return 0;
}

static int read_at(const char *path, const char *offset, const char *count) {
    struct nfsfh *fh;
    size_t n = strtoull(count, NULL, 10);
    char *buf = malloc(n + 1);
    int rc = nfs_open(nfs, path, O_RDONLY, &fh);
    if (rc < 0) return fail("open", rc);
    rc = nfs_pread(nfs, fh, strtoull(offset, NULL, 10), n, buf);
    if (rc < 0) return fail("pread", rc);
    fwrite(buf, 1, rc, stdout);
    nfs_close(nfs, fh);
    return 0;
}

static int list(const char *path) {
    struct nfsdir *dir;
    struct nfsdirent *ent;
    int rc = nfs_opendir(nfs, path, &dir);
    if (rc < 0) return fail("opendir", rc);
    while ((ent = nfs_readdir(nfs, dir)) != NULL) {
        printf("%s\n", ent->name);
    }
    nfs_closedir(nfs, dir);
    return 0;
}

/* Opens a file, says so, waits for a line on stdin (the server is
 * restarted meanwhile), then asks for its attributes by the old handle. */
static int stale(const char *path) {
    struct nfsfh *fh;
    struct nfs_stat_64 st;
    char line[16];
    int rc = nfs_open(nfs, path, O_RDONLY, &fh);
    if (rc < 0) return fail("open", rc);
    printf("opened\n");
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin)) return 1;
    rc = nfs_fstat64(nfs, fh, &st);
    if (rc < 0) return fail("fstat", rc);
    printf("size=%" PRIu64 "\n", st.nfs_size);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: nfs_driver PORT UID OP ARGS...\n");
        return 2;
    }
    char url[256];
    snprintf(url, sizeof url, "nfs://127.0.0.1/?nfsport=%s&mountport=%s&uid=%s", argv[1], argv[1], argv[2]);
    nfs = nfs_init_context();
    struct nfs_url *u = nfs_parse_url_dir(nfs, url);
    if (!u) return fail("parse url", -1);
    int rc = nfs_mount(nfs, u->server, u->path);
    if (rc < 0) return fail("mount", rc);
    const char *op = argv[3];
    char **a = argv + 4;
    int n = argc - 4;
    if (!strcmp(op, "stat") && n == 1) return print_stat(a[0]);
    if (!strcmp(op, "write") && n == 3) return write_at(a[0], a[1], a[2], 0);
    if (!strcmp(op, "commit") && n == 3) return write_at(a[0], a[1], a[2], 1);
    if (!strcmp(op, "read") && n == 3) return read_at(a[0], a[1], a[2]);
    if (!strcmp(op, "ls") && n == 1) return list(a[0]);
    if (!strcmp(op, "stale") && n == 1) return stale(a[0]);
    if (!strcmp(op, "truncate") && n == 2) {
        rc = nfs_truncate(nfs, a[0], strtoull(a[1], NULL, 10));
        return rc < 0 ? fail("truncate", rc) : print_stat(a[0]);
    }
    if (!strcmp(op, "chmod") && n == 2) {
        rc = nfs_chmod(nfs, a[0], strtol(a[1], NULL, 8));
        return rc < 0 ? fail("chmod", rc) : print_stat(a[0]);
    }
    if (!strcmp(op, "utimes") && n == 3) {
        struct timeval tv[2] = {{strtol(a[1], NULL, 10), 0}, {strtol(a[2], NULL, 10), 0}};
        rc = nfs_utimes(nfs, a[0], tv);
        return rc < 0 ? fail("utimes", rc) : print_stat(a[0]);
    }
    if (!strcmp(op, "symlink") && n == 2) {
        rc = nfs_symlink(nfs, a[0], a[1]);
        return rc < 0 ? fail("symlink", rc) : 0;
    }
    if (!strcmp(op, "readlink") && n == 1) {
        char target[4096];
        rc = nfs_readlink(nfs, a[0], target, sizeof target);
        if (rc < 0) return fail("readlink", rc);
        printf("%s\n", target);
        return 0;
    }
    if (!strcmp(op, "link") && n == 2) {
        rc = nfs_link(nfs, a[0], a[1]);
        return rc < 0 ? fail("link", rc) : print_stat(a[1]);
    }
    if (!strcmp(op, "mkdir") && n == 2) {
        rc = nfs_mkdir2(nfs, a[0], strtol(a[1], NULL, 8));
        return rc < 0 ? fail("mkdir", rc) : print_stat(a[0]);
    }
    if (!strcmp(op, "rmdir") && n == 1) {
        rc = nfs_rmdir(nfs, a[0]);
        return rc < 0 ? fail("rmdir", rc) : 0;
    }
    if (!strcmp(op, "unlink") && n == 1) {
        rc = nfs_unlink(nfs, a[0]);
        return rc < 0 ? fail("unlink", rc) : 0;
    }
    if (!strcmp(op, "rename") && n == 2) {
        rc = nfs_rename(nfs, a[0], a[1]);
        return rc < 0 ? fail("rename", rc) : 0;
    }
    if (!strcmp(op, "create") && n == 2) {
        struct nfsfh *fh;
        int flags = O_WRONLY | O_CREAT | (!strcmp(a[1], "excl") ? O_EXCL : 0);
        rc = nfs_open2(nfs, a[0], flags, 0640, &fh);
        if (rc < 0) return fail("create", rc);
        nfs_close(nfs, fh);
        return print_stat(a[0]);
    }
    if (!strcmp(op, "fsinfo") && n == 0) {
        printf("readmax=%" PRIu64 " writemax=%" PRIu64 "\n", nfs_get_readmax(nfs), nfs_get_writemax(nfs));
        return 0;
    }
    if (!strcmp(op, "statvfs") && n == 1) {
        struct nfs_statvfs_64 sv;
        rc = nfs_statvfs64(nfs, a[0], &sv);
        if (rc < 0) return fail("statvfs", rc);
        printf("bsize=%" PRIu64 " blocks=%" PRIu64 " bfree=%" PRIu64 " bavail=%" PRIu64
               " files=%" PRIu64 " ffree=%" PRIu64 "\n",
               sv.f_bsize, sv.f_blocks, sv.f_bfree, sv.f_bavail, sv.f_files, sv.f_ffree);
        return 0;
    }
    fprintf(stderr, "unknown operation %s with %d arguments\n", op, n);
    return 2;
}
