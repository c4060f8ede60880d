/*
 * version.c - which build this is.  A run stores it, and a run resumed by
 * another build grades its stored samples again (results/run.c): the
 * project's version alone says nothing of the grader's commits between
 * releases.
 */
#include "build-version.h"
#include "ssfteval/util.h"

static const char commit[] = SSF_BUILD_COMMIT;
static const char release[] = SSFTEVAL_VERSION_STRING;
static const char release_and_commit[] = SSFTEVAL_VERSION_STRING "+g" SSF_BUILD_COMMIT;

const char *ssf_version(void)
{
    return commit[0] ? release_and_commit : release;
}
