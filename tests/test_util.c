/*
 * test_util.c - buffers, atomic writes, directories, SHA-256 and error
 * formatting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <sys/file.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>
#include <locale.h>
#include <spawn.h>
#include <sys/wait.h>

#include "ssfteval/util.h"
#include "test-support.h"

static void test_buf(void **state)
{
    (void)state;
    ssf_buf b = {0};
    ssf_buf_puts(&b, "ab");
    ssf_buf_putc(&b, 'c');
    ssf_buf_printf(&b, "%d-%s", 42, "x");
    assert_string_equal(b.data, "abc42-x");
    assert_int_equal(b.len, 7);
    for (int i = 0; i < 1000; i++)
        ssf_buf_putc(&b, 'z');
    assert_int_equal(b.len, 1007);
    ssf_buf_reset(&b);
    assert_string_equal(b.data, "");
    char *s = ssf_buf_take(&b);
    assert_string_equal(s, "");
    assert_null(b.data);
    free(s);
}

static void test_errors(void **state)
{
    (void)state;
    ssf_error err;
    assert_int_equal(ssf_fail(&err, "file %s: bad", "x.json"), -1);
    assert_string_equal(err.msg, "file x.json: bad");
    ssf_fail_prefix(&err, "task %d", 3);
    assert_string_equal(err.msg, "task 3: file x.json: bad");
    assert_int_equal(ssf_fail(NULL, "ignored"), -1);
}

/* A refused option stays one through added context, and an error written
 * over it is not one. */
static void test_usage_errors(void **state)
{
    (void)state;
    ssf_error err = {0};
    assert_int_equal(ssf_fail_usage(&err, "--slots %d: at most %d", 9, 8), -1);
    assert_string_equal(err.msg, "--slots 9: at most 8");
    assert_int_equal(err.usage, 1);
    ssf_fail_prefix(&err, "engine");
    assert_string_equal(err.msg, "engine: --slots 9: at most 8");
    assert_int_equal(err.usage, 1);
    ssf_fail(&err, "no CUDA device found");
    assert_int_equal(err.usage, 0);
    assert_int_equal(ssf_fail_usage(NULL, "ignored"), -1);
}

/* A whole number in range, or nothing written: what atoi() got wrong. */
static void test_parse_numbers(void **state)
{
    (void)state;
    long v = 7;
    assert_int_equal(ssf_parse_long("42", 1, 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(ssf_parse_long("-3", -5, 5, &v), 0);
    assert_int_equal(v, -3);
    static const char *const bad_longs[] = {
        "", "8k", "x", "101", "0", " 5x", "1e3", "99999999999999999999999", " 5", "\t5"};
    for (size_t i = 0; i < sizeof bad_longs / sizeof *bad_longs; i++) {
        v = 7;
        assert_int_equal(ssf_parse_long(bad_longs[i], 1, 100, &v), -1);
        assert_int_equal(v, 7);
    }
    double d = 7;
    assert_int_equal(ssf_parse_double("0.25", 0, 1, &d), 0);
    assert_true(d == 0.25);
    assert_int_equal(ssf_parse_double("1e-3", 0, 1, &d), 0);
    assert_true(d == 1e-3);
    static const char *const bad_doubles[] = {"",     "nan",   "inf",  "1.5",  "-0.1",
                                              "0.5s", "1e999", " 0.5", "\n0.5"};
    for (size_t i = 0; i < sizeof bad_doubles / sizeof *bad_doubles; i++) {
        d = 7;
        assert_int_equal(ssf_parse_double(bad_doubles[i], 0, 1, &d), -1);
        assert_true(d == 7);
    }
    d = 7; /* not finite, though the bounds take it */
    assert_int_equal(ssf_parse_double("inf", -INFINITY, INFINITY, &d), -1);
    assert_true(d == 7);
}

/* localedef -i de_DE -f UTF-8 DIR/de_DE.UTF-8, quietly; 1 if it built. */
static int build_de_locale(const char *dir)
{
    char out[512];
    snprintf(out, sizeof out, "%s/de_DE.UTF-8", dir);
    char *const argv[] = {"localedef", "-i", "de_DE", "-f", "UTF-8", out, NULL};
    posix_spawn_file_actions_t quiet;
    posix_spawn_file_actions_init(&quiet);
    posix_spawn_file_actions_addopen(&quiet, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&quiet, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int status = 0, spawned = posix_spawnp(&pid, "localedef", &quiet, NULL, argv, environ) == 0;
    posix_spawn_file_actions_destroy(&quiet);
    return spawned && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
           WEXITSTATUS(status) == 0;
}

/* Numbers in options and files are read with a '.', whatever locale a
 * program that links the library has set: under de_DE strtod reads "0.5"
 * as 0.  The locale is built from glibc's sources into a temporary
 * directory; the test skips where they are not installed. */
static void test_numbers_ignore_locale(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    setenv("LOCPATH", dir, 1);
    int set = build_de_locale(dir) && setlocale(LC_NUMERIC, "de_DE.UTF-8") != NULL;
    if (!set) {
        unsetenv("LOCPATH");
        remove_tree(dir);
        free(dir);
        skip(); /* no de_DE sources (glibc's locales package) */
        return;
    }
    assert_true(strtod("0.5", NULL) == 0.0); /* the locale is in force */
    double v = 0;
    assert_int_equal(ssf_parse_double("0.5", 0, 1, &v), 0);
    assert_true(v == 0.5);
    assert_true(ssf_strtod("1e-06", NULL) == 1e-06);
    assert_true(ssf_strtod("10000.5", NULL) == 10000.5);
    setlocale(LC_NUMERIC, "C");
    unsetenv("LOCPATH");
    remove_tree(dir);
    free(dir);
}

/* What sits at a digest cache entry's name and is no regular file (a FIFO
 * would block the read, a link to /dev/zero fill memory) is passed over:
 * the file is hashed as if nothing were kept. */
static void test_digest_cache_odd_entries(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char *file = write_temp_file(dir, "w", "abc"), *cache = ssf_path_join(dir, "cache");
    char entry[4096], hex[65];
    struct stat st;
    assert_int_equal(stat(file, &st), 0);
    snprintf(entry, sizeof entry, "%s/sha256", cache);
    ssf_error err;
    assert_int_equal(ssf_mkdirs(entry, &err), 0);
    snprintf(entry, sizeof entry, "%s/sha256/%jx-%jx", cache, (uintmax_t)st.st_dev,
             (uintmax_t)st.st_ino);
    static const char abc[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    assert_int_equal(mkfifo(entry, 0600), 0);
    assert_int_equal(ssf_sha256_file_cached(file, cache, NULL, hex, &err), 0);
    assert_string_equal(hex, abc);
    assert_int_equal(unlink(entry), 0);
    assert_int_equal(symlink("/dev/zero", entry), 0);
    assert_int_equal(ssf_sha256_file_cached(file, cache, NULL, hex, &err), 0);
    assert_string_equal(hex, abc);
    remove_tree(dir);
    free(file);
    free(cache);
    free(dir);
}

/* A mapped file's digest is of the bytes mapped, not of what its path holds
 * by now (here a file put in its place since). */
static void test_digest_of_mapped_bytes(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char *file = write_temp_file(dir, "w", "abc"), *cache = ssf_path_join(dir, "cache"), hex[65];
    struct stat opened;
    assert_int_equal(stat(file, &opened), 0);
    ssf_error err;
    assert_int_equal(ssf_write_file_atomic(file, "xyz", 3, &err), 0); /* another inode */
    ssf_sha256_mapped_cached(file, "abc", 3, &opened, cache, NULL, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    remove_tree(dir);
    free(file);
    free(cache);
    free(dir);
}

static void cache_entry_of(const char *cache, const char *file, char *entry, size_t size)
{
    struct stat st;
    assert_int_equal(stat(file, &st), 0);
    snprintf(entry, size, "%s/sha256/%jx-%jx", cache, (uintmax_t)st.st_dev, (uintmax_t)st.st_ino);
}

/* A file unchanged for some seconds is remembered, and its digest then read
 * from the cache (here the bytes passed differ, to tell); one changed in
 * place since it was opened is not remembered, since what was hashed may
 * not be what its stat now describes. */
static void test_digest_cache_remembers_settled_files(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char *kept = write_temp_file(dir, "kept", "def"),
         *changed = write_temp_file(dir, "changed", "abc");
    char *cache = ssf_path_join(dir, "cache"), entry[4096], hex[65];
    sleep(3); /* past the 2 s a file must be left alone to be remembered */
    struct stat opened;
    /* One written just now is not: a second write within its times'
     * granularity would leave them as they were. */
    char *fresh = write_temp_file(dir, "fresh", "abc");
    ssf_error err;
    assert_int_equal(ssf_sha256_file_cached(fresh, cache, NULL, hex, &err), 0);
    cache_entry_of(cache, fresh, entry, sizeof entry);
    assert_int_equal(access(entry, F_OK), -1);
    free(fresh);
    assert_int_equal(stat(kept, &opened), 0);
    static const char def[] = "cb8379ac2098aa165029e3938a51da0bcecfc008fd6795f401178647f96c5b34";
    ssf_sha256_mapped_cached(kept, "def", 3, &opened, cache, NULL, hex);
    assert_string_equal(hex, def);
    cache_entry_of(cache, kept, entry, sizeof entry);
    assert_int_equal(access(entry, F_OK), 0);
    ssf_sha256_mapped_cached(kept, "zzz", 3, &opened, cache, NULL, hex);
    assert_string_equal(hex, def);
    /* Rewritten in place, the same size, its mtime set back: the change
     * time still tells, and the digest is taken again. */
    FILE *w = fopen(kept, "r+");
    assert_non_null(w);
    assert_true(fputs("ghi", w) >= 0);
    assert_int_equal(fclose(w), 0);
    struct timespec times[2] = {opened.st_atim, opened.st_mtim};
    assert_int_equal(utimensat(AT_FDCWD, kept, times, 0), 0);
    assert_int_equal(ssf_sha256_file_cached(kept, cache, NULL, hex, &err), 0);
    assert_string_equal(hex, "50ae61e841fac4e8f9e40baf2ad36ec868922ea48368c18f9535e47db56dd7fb");

    assert_int_equal(stat(changed, &opened), 0);
    FILE *f = fopen(changed, "r+");
    assert_non_null(f);
    assert_true(fputs("xyz", f) >= 0);
    assert_int_equal(fclose(f), 0);
    ssf_sha256_mapped_cached(changed, "abc", 3, &opened, cache, NULL, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    cache_entry_of(cache, changed, entry, sizeof entry);
    assert_int_equal(access(entry, F_OK), -1);
    remove_tree(dir);
    free(kept);
    free(changed);
    free(cache);
    free(dir);
}

static void test_files_and_sha(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char path[4096];
    snprintf(path, sizeof path, "%s/a/b/c", dir);
    ssf_error err;
    assert_int_equal(ssf_mkdirs(path, &err), 0);
    assert_int_equal(ssf_mkdirs(path, &err), 0); /* exists already: fine */
    snprintf(path, sizeof path, "%s/a/b/c/f.txt", dir);
    assert_int_equal(ssf_write_file_atomic(path, "abc", 3, &err), 0);
    char *text;
    size_t len;
    assert_int_equal(ssf_read_file(path, &text, &len, &err), 0);
    assert_int_equal(len, 3);
    assert_string_equal(text, "abc");
    free(text);
    char hex[65];
    ssf_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    char hex2[65];
    assert_int_equal(ssf_sha256_file(path, hex2, &err), 0);
    assert_string_equal(hex, hex2);
    ssf_sha256_ctx *pieces = ssf_sha256_begin(); /* the same bytes fed in two pieces */
    ssf_sha256_update(pieces, "a", 1);
    ssf_sha256_update(pieces, "bc", 2);
    ssf_sha256_end(pieces, hex2);
    assert_string_equal(hex, hex2);
    snprintf(path, sizeof path, "%s/missing", dir);
    assert_int_equal(ssf_read_file(path, &text, &len, &err), -1);
    assert_non_null(strstr(err.msg, path));
    assert_int_equal(ssf_sha256_file(path, hex2, &err), -1);
    snprintf(path, sizeof path, "%s/nodir/f", dir);
    assert_int_equal(ssf_write_file_atomic(path, "x", 1, &err), -1);
    assert_non_null(strstr(err.msg, "nodir"));
    remove_tree(dir);
    free(dir);
}

static void expect_content(const char *path, const char *want)
{
    char *text;
    ssf_error err;
    assert_int_equal(ssf_read_file(path, &text, NULL, &err), 0);
    assert_string_equal(text, want);
    free(text);
}

/* Text that must stay one C string keeps what follows a NUL. */
static void test_append_text(void **state)
{
    (void)state;
    ssf_buf b = {0};
    ssf_buf_append_text(&b, "a\0b\0", 4);
    assert_string_equal(b.data, "a\xEF\xBF\xBD"
                                "b\xEF\xBF\xBD");
    assert_int_equal(b.len, 8);
    ssf_buf_free(&b);
    ssf_buf empty = {0}; /* nothing appended: still a string */
    ssf_buf_append_text(&empty, "", 0);
    assert_non_null(empty.data);
    assert_string_equal(empty.data, "");
    ssf_buf_free(&empty);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* A file written piece by piece replaces the old one only on commit; an
 * abandoned one leaves it and no temporary file behind. */
static void test_atomic_writer(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char path[4096];
    snprintf(path, sizeof path, "%s/out.jsonl", dir);
    ssf_error err;
    assert_int_equal(ssf_write_file_atomic(path, "old\n", 4, &err), 0);
    ssf_atomic_file f;
    assert_int_equal(ssf_atomic_begin(&f, path, 1, &err), 0);
    fputs("half", f.f);
    ssf_atomic_abandon(&f);
    expect_content(path, "old\n");
    assert_int_equal(count_entries(dir), 1);

    mode_t mask = umask(022);
    assert_int_equal(ssf_atomic_begin(&f, path, 1, &err), 0);
    fputs("new\n", f.f);
    expect_content(path, "old\n"); /* not yet */
    assert_int_equal(ssf_atomic_commit(&f, &err), 0);
    umask(mask);
    expect_content(path, "new\n");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    remove_tree(dir);
    free(dir);
}

static void touch(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
}

static int exists_in(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

/* Writes an empty file whose mtime is age_s in the past. */
static void touch_aged(const char *dir, const char *name, long age_s)
{
    touch(dir, name);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct timespec times[2] = {{time(NULL) - age_s, 0}, {time(NULL) - age_s, 0}};
    assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
}

/* A temporary file a killed writer left beside out.jsonl goes with the next
 * write; one a live writer holds locked, one written in the last minute (a
 * writer between its mkstemp and its lock) and other names stay. */
static void test_atomic_writer_removes_orphans(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char path[4096];
    touch_aged(dir, "out.jsonl.tmp.AbC123", 120);
    touch_aged(dir, "out.jsonl.tmp.Lck123", 120);
    touch_aged(dir, "out.jsonl.tmp.New123", 0);
    touch_aged(dir, "out.jsonl.tmp.notes", 120);
    touch_aged(dir, "out.jsonl.tmp.saved12", 120);
    touch_aged(dir, "other.jsonl.tmp.AbC123", 120);
    touch_aged(dir, "out.jsonl.tmp.v2.csv", 120); /* six characters, not mkstemp's */
    snprintf(path, sizeof path, "%s/out.jsonl.tmp.Fifo12", dir);
    assert_int_equal(mkfifo(path, 0600), 0); /* opening it must not hang the write */
    snprintf(path, sizeof path, "%s/out.jsonl.tmp.Lck123", dir);
    int held = open(path, O_RDONLY);
    assert_true(held >= 0);
    assert_int_equal(flock(held, LOCK_EX), 0); /* a live writer's */
    snprintf(path, sizeof path, "%s/out.jsonl", dir);
    ssf_error err;
    assert_int_equal(ssf_write_file_atomic(path, "x", 1, &err), 0);
    close(held);
    assert_false(exists_in(dir, "out.jsonl.tmp.AbC123"));
    assert_true(exists_in(dir, "out.jsonl.tmp.Lck123"));
    assert_true(exists_in(dir, "out.jsonl.tmp.New123"));
    assert_true(exists_in(dir, "out.jsonl.tmp.notes"));
    assert_true(exists_in(dir, "out.jsonl.tmp.saved12"));
    assert_true(exists_in(dir, "other.jsonl.tmp.AbC123"));
    assert_true(exists_in(dir, "out.jsonl.tmp.v2.csv"));
    assert_true(exists_in(dir, "out.jsonl.tmp.Fifo12"));
    assert_int_equal(count_entries(dir), 8);
    /* A writer of this library holds its own lock: a slow one (nothing
     * written for two minutes) keeps its file through another write. */
    ssf_atomic_file slow;
    assert_int_equal(ssf_atomic_begin(&slow, path, 0, &err), 0);
    fputs("slow", slow.f);
    fflush(slow.f);
    const char *slow_name = strrchr(slow.tmp_path, '/') + 1;
    struct timespec old[2] = {{time(NULL) - 120, 0}, {time(NULL) - 120, 0}};
    assert_int_equal(utimensat(AT_FDCWD, slow.tmp_path, old, 0), 0);
    assert_int_equal(ssf_write_file_atomic(path, "y", 1, &err), 0);
    assert_true(exists_in(dir, slow_name));
    assert_int_equal(ssf_atomic_commit(&slow, &err), 0);
    expect_content(path, "slow");
    remove_tree(dir);
    free(dir);
}

/* Each write failure names its own fix: room for a full disk, quota or
 * size limit; another file system for a read-only one; permissions. */
static void test_write_fix(void **state)
{
    (void)state;
    const char *room = "free some space, or write to another disk";
    assert_string_equal(ssf_write_fix(ENOSPC), room);
    assert_string_equal(ssf_write_fix(EDQUOT), room);
    assert_string_equal(ssf_write_fix(EFBIG), room);
    assert_string_equal(ssf_write_fix(EROFS), "the file system is read-only: write to another one");
    assert_string_equal(ssf_write_fix(EACCES), "check the folder's permissions");
    assert_string_equal(ssf_write_fix(EPERM), "check the folder's permissions");
    assert_string_equal(ssf_write_fix(ENOENT), "check the path");
    assert_string_equal(ssf_write_fix(ENOTDIR), "check the path");
    assert_string_equal(ssf_write_fix(EIO), "check the disk");
    assert_string_equal(ssf_write_fix(0), "check the disk");
}

/* An atomic file fails first where its temporary file is made, and names
 * its fix there: a folder missing from the path ... */
static void test_atomic_file_missing_folder(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char path[4096];
    ssf_error err;
    snprintf(path, sizeof path, "%s/nodir/f", dir);
    assert_int_equal(ssf_write_file_atomic(path, "x", 1, &err), -1);
    assert_non_null(strstr(err.msg, ": No such file or directory; check the path"));
    remove_tree(dir);
    free(dir);
}

/* ... or one without write permission (for a user whom it binds: root
 * writes anyway, and the test skips). */
static void test_atomic_file_locked_folder(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char path[4096];
    ssf_error err;
    snprintf(path, sizeof path, "%s/locked", dir);
    assert_int_equal(mkdir(path, 0555), 0);
    int binds = access(path, W_OK) != 0;
    snprintf(path, sizeof path, "%s/locked/f", dir);
    int rc = binds ? ssf_write_file_atomic(path, "x", 1, &err) : 0;
    remove_tree(dir);
    free(dir);
    if (!binds) skip();
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err.msg, ": Permission denied; check the folder's permissions"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf),
        cmocka_unit_test(test_write_fix),
        cmocka_unit_test(test_atomic_file_missing_folder),
        cmocka_unit_test(test_atomic_file_locked_folder),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_parse_numbers),
        cmocka_unit_test(test_numbers_ignore_locale),
        cmocka_unit_test(test_digest_cache_remembers_settled_files),
        cmocka_unit_test(test_files_and_sha),
        cmocka_unit_test(test_digest_cache_odd_entries),
        cmocka_unit_test(test_digest_of_mapped_bytes),
        cmocka_unit_test(test_atomic_writer),
        cmocka_unit_test(test_atomic_writer_removes_orphans),
        cmocka_unit_test(test_append_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
