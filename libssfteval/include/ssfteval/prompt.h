/*
 * prompt.h - rendering a document into the exact prompt text.
 *
 * user content = the task's template with {{question}} and the choice
 * letters filled in; the prompt = that content in a chat template, followed
 * by the SSFT tag suffix "<|im_start|><think{K}>\n" when a tag is asked for.
 */
#ifndef SSFTEVAL_PROMPT_H
#define SSFTEVAL_PROMPT_H

#include "ssfteval/task.h"
#include "ssfteval/util.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ssf_chat_template {
    SSF_CHAT_QWEN25, /* ChatML with Qwen2.5's default system prompt */
    SSF_CHAT_CHATML, /* ChatML, no system prompt */
    SSF_CHAT_NONE,   /* the user content as it is */
} ssf_chat_template;

int ssf_chat_template_from_name(const char *name); /* -1 if unknown or NULL */
const char *ssf_chat_template_name(ssf_chat_template tpl);

/* Maps a model's chat template to one of the built-ins: chat_template.jinja
 * beside the tokenizer_config.json at the path when there is one (it wins, as
 * in transformers), else the config's chat_template; an error when it is
 * none of them. */
int ssf_chat_template_detect(const char *tokenizer_config_path, ssf_chat_template *out,
                             ssf_error *err);

/* The task's template filled in with the document (free it): one of the
 * task's documents (ssf_task_load_docs).  A placeholder the document has no
 * choice for is left as it is ({{D}} of a three-choice document). */
char *ssf_prompt_user_content(const ssf_task *task, const ssf_doc *doc);

/* The full prompt (free it); tag 0 means no SSFT tag, 1..99 appends the
 * suffix. */
char *ssf_prompt_render(const ssf_task *task, const ssf_doc *doc, ssf_chat_template tpl, int tag);

/* Checks a template's placeholders for a task: {{question}} always, {{A}}.. up
 * to the number of choices for letter tasks.  Used when specs are parsed. */
int ssf_prompt_check_template(const char *tmpl, size_t n_choices, ssf_error *err);

#ifdef __cplusplus
}
#endif
#endif
