/*
 * api_experiments: the experiments file in use (serve --experiments):
 * loading it, opening the variants' own model directories beside the
 * main model, and telling the attribution batcher what each experiment
 * is. The reload (api.c) swaps all of it with the model, or none.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "util.h"

/* Tells the attribution batcher what each experiment is, for the report
 * (attribution_define); a definition it refuses is said in the log and
 * its answers go uncounted, as the batcher's bounds are this module's
 * (EXP_MAX_VARIANTS, EXP_NAME_MAX) too. */
void api_define_experiments(api *a, const experiments *ex)
{
	if (!a->attribution)
		return;
	for (size_t i = 0; i < experiments_count(ex); i++) {
		const exp_experiment *e = experiments_at(ex, i);
		const char *names[EXP_MAX_VARIANTS];
		double shares[EXP_MAX_VARIANTS];
		for (uint8_t k = 0; k < e->n_variants; k++) {
			names[k] = e->variants[k].name;
			shares[k] = e->variants[k].share;
		}
		if (attribution_define(a->attribution, e->id, e->name, names, shares,
				       e->n_variants) != 0)
			fprintf(stderr, "shopkeeper: experiment \"%s\": the report cannot record "
					"it (attribution_define refused it)\n", e->name);
	}
}

/* "PATH: variant model "NAME": " opens a variant model's error: the
 * directory by its last path part, as GET /v1/experiments names it, so an
 * answer does not say where the server keeps its files (the whole path
 * goes to the log). */
static void variant_model_error(strbuf *err, const char *path, const char *dir, const char *msg)
{
	fprintf(stderr, "shopkeeper: experiments file %s: variant model %s: %s\n", path, dir, msg);
	size_t n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		n--;
	size_t start = n;
	while (start > 0 && dir[start - 1] != '/')
		start--;
	sb_addf(err, "%s: variant model \"%.*s\": ", path, (int)(n - start), dir + start);
	api_add_without_dir(err, msg, dir);
}

int api_open_variant_models(api *a, const char *path, const experiments *ex,
			    struct model_ref *r, strbuf *err)
{
	char real[EXP_MAX_MODELS][PATH_MAX], main_real[PATH_MAX];
	size_t n = experiments_model_count(ex);
	r->n_vm = 0;
	if (n == 0)
		return 0;
	if (!realpath(a->model_dir, main_real))
		main_real[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		const char *dir = experiments_model_dir(ex, i);
		if (!realpath(dir, real[i])) {
			variant_model_error(err, path, dir, strerror(errno));
			goto fail;
		}
		if (strcmp(real[i], main_real) == 0) {
			r->slot_vm[i] = 0;
			continue;
		}
		size_t k = 0;
		while (k < i && strcmp(real[k], real[i]) != 0)
			k++;
		if (k < i) { /* another spelling of slot k's directory */
			r->slot_vm[i] = r->slot_vm[k];
			continue;
		}
		model *m = NULL;
		strbuf e = STRBUF_INIT;
		if (model_open(dir, &m, &e) != 0) {
			variant_model_error(err, path, dir, sb_str(&e));
			sb_release(&e);
			goto fail;
		}
		sb_release(&e);
		int rc = rec_load_item_overrides(m, a->state);
		if (rc)
			fprintf(stderr, "shopkeeper: variant model %s: cannot read the item overrides "
					"(PUT /v1/items): %s; serving without them\n", dir,
				store_strerror(rc));
		r->vm[r->n_vm++] = m;
		r->slot_vm[i] = r->n_vm;
	}
	return 0;
fail:
	api_variant_models_close(r->vm, r->n_vm);
	r->n_vm = 0;
	return -1;
}

int api_set_experiments(api *a, const char *path, strbuf *err)
{
	experiments *ex = NULL;
	struct model_ref vms = { 0 };
	if (experiments_load(path, &ex, err) != 0)
		return -1;
	if (api_open_variant_models(a, path, ex, &vms, err) != 0) {
		experiments_free(ex);
		return -1;
	}
	api_define_experiments(a, ex);
	free(a->experiments_path);
	a->experiments_path = xstrdup(path);
	pthread_mutex_lock(&a->ref_lock);
	struct model_ref *r = atomic_load(&a->current);
	experiments_free(r->ex); /* before serving: nobody reads it */
	api_variant_models_close(r->vm, r->n_vm);
	r->ex = ex;
	r->n_vm = vms.n_vm;
	memcpy(r->vm, vms.vm, sizeof(r->vm));
	memcpy(r->slot_vm, vms.slot_vm, sizeof(r->slot_vm));
	pthread_mutex_unlock(&a->ref_lock);
	return 0;
}
