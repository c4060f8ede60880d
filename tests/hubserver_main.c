/*
 * hubserver_main.c - runs the test Hub (hubserver.h) as a program for the
 * shell tests:
 *   hubserver --data-dir DIR [--gpqa-csv FILE | --gpqa-zip ZIP] [--token T]
 *             [--port-file FILE] [--models-dir DIR]
 * --gpqa-zip decrypts the Diamond CSV from the official archive into a
 * temporary directory that is removed on exit, so shell tests need no unzip.
 * It prints the port (or writes it to --port-file, atomically, so a waiting
 * script never reads half a number) and serves until SIGTERM or SIGINT.
 */
#include "hubserver.h"
#include "ssfteval/records.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pthread.h>

static void usage(FILE *out)
{
    fputs("usage: hubserver --data-dir DIR [--gpqa-csv FILE | --gpqa-zip ZIP] [--token T]\n"
          "                 [--port-file FILE] [--models-dir DIR]\n",
          out);
}

/* 0: run, 1: --help, -1: bad arguments. */
static int parse_args(int argc, char **argv, struct hubserver_options *o, const char **port_file,
                      const char **gpqa_zip, const char **models_dir)
{
    static const struct option longopts[] = {
        {"data-dir", required_argument, NULL, 'd'}, {"gpqa-csv", required_argument, NULL, 'g'},
        {"token", required_argument, NULL, 't'},    {"port-file", required_argument, NULL, 'p'},
        {"gpqa-zip", required_argument, NULL, 'z'}, {"models-dir", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            o->data_dir = optarg;
            break;
        case 'g':
            o->gpqa_csv = optarg;
            break;
        case 't':
            o->token = optarg;
            break;
        case 'p':
            *port_file = optarg;
            break;
        case 'z':
            *gpqa_zip = optarg;
            break;
        case 'm':
            *models_dir = optarg;
            break;
        case 'h':
            return 1;
        default:
            return -1;
        }
    }
    return optind == argc && o->data_dir ? 0 : -1;
}

/* Decrypts the Diamond CSV from the official zip into dir/gpqa_diamond.csv. */
static int extract_gpqa(const char *zip, char *dir, char **csv_path, ssf_error *err)
{
    char *data;
    size_t len;
    if (!mkdtemp(dir)) return ssf_fail(err, "mkdtemp %s failed", dir);
    if (ssf_zip_read_member(zip, "dataset/gpqa_diamond.csv", "deserted-untie-orchid", &data, &len,
                            err))
        return -1;
    ssf_buf path = {0};
    ssf_buf_printf(&path, "%s/gpqa_diamond.csv", dir);
    int rc = ssf_write_file_atomic(path.data, data, len, err);
    free(data);
    *csv_path = ssf_buf_take(&path);
    return rc;
}

static int publish_port(unsigned port, const char *port_file, ssf_error *err)
{
    char text[16];
    int n = snprintf(text, sizeof text, "%u\n", port);
    if (port_file) return ssf_write_file_atomic(port_file, text, (size_t)n, err);
    if (fputs(text, stdout) == EOF || fflush(stdout) != 0)
        return ssf_fail(err, "cannot write the port to stdout");
    return 0;
}

int main(int argc, char **argv)
{
    struct hubserver_options o = {0};
    const char *port_file = NULL, *gpqa_zip = NULL, *models_dir = NULL;
    int parsed = parse_args(argc, argv, &o, &port_file, &gpqa_zip, &models_dir);
    if (parsed != 0) {
        usage(parsed > 0 ? stdout : stderr);
        return parsed > 0 ? 0 : 2;
    }
    /* Blocked before the server thread exists, so that it inherits the mask
     * and the signals reach sigwait below. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    ssf_error err = {0};
    char tmp_dir[] = "/tmp/hubserver-XXXXXX";
    char *csv_path = NULL;
    struct hubserver *server = NULL;
    int rc = 1;
    if (gpqa_zip && extract_gpqa(gpqa_zip, tmp_dir, &csv_path, &err) == 0) o.gpqa_csv = csv_path;
    if (!gpqa_zip || o.gpqa_csv) server = hubserver_start(&o, &err);
    if (server && models_dir) hubserver_serve_models(server, models_dir);
    if (server && publish_port(hubserver_port(server), port_file, &err) == 0) {
        int sig = 0;
        sigwait(&stop, &sig);
        rc = 0;
    } else {
        fprintf(stderr, "hubserver: %s\n", err.msg);
    }
    hubserver_stop(server);
    if (csv_path) unlink(csv_path);
    if (gpqa_zip) rmdir(tmp_dir);
    free(csv_path);
    return rc;
}
