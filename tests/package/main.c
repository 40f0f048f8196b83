/* Smallest real program against an installed lcsm: built-in model, 8 tokens. */
#include <lcsm.h>
#include <stdio.h>

int main(void)
{
    lcsm_backend *be = NULL;
    lcsm_model *m = NULL;
    lcsm_session *s = NULL;
    int32_t prompt[1] = {7}, out[8];
    lcsm_session_options so;
    lcsm_session_options_default(&so);
    so.max_len = 16;
    lcsm_status st = lcsm_backend_create("cpu", NULL, &be);
    if (st == LCSM_OK)
        st = lcsm_model_create_default(be, &m);
    if (st == LCSM_OK)
        st = lcsm_session_create(m, &so, &s);
    if (st == LCSM_OK)
        st = lcsm_generate(s, prompt, 1, 8, out);
    if (st == LCSM_OK)
        printf("lcsm %s: generated %d tokens\n", lcsm_version_string(), 8);
    else
        fprintf(stderr, "%s: %s\n", lcsm_strerror(st), lcsm_last_error());
    lcsm_session_destroy(s);
    lcsm_model_destroy(m);
    lcsm_backend_destroy(be);
    return st == LCSM_OK ? 0 : 1;
}
