/*
 * rfm: Recency, Frequency, Monetary analysis and the named segments built on
 * it (README.md "Segments").
 *
 * At training time each customer's figures are computed from their purchase
 * rows: last and first purchase, frequency (distinct days with a purchase),
 * monetary (sum of quantity x price, returns subtracting). Quintile cut
 * points of the three figures over all customers with a purchase are stored
 * with the model. At serving time recency is measured against the current
 * clock and scored with the stored recency cuts, so a customer drifts from
 * `loyal` to `at_risk` as weeks pass, without retraining. Recency is
 * counted in whole days elapsed, for the cuts and the scores alike.
 */
#ifndef SHOPKEEPER_RFM_H
#define SHOPKEEPER_RFM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dataset; /* ingest.h */

enum segment {
	SEG_CHAMPIONS = 0, /* 優良顧客: bought recently, often, and spent the most */
	SEG_LOYAL,         /* buy often, not lapsing */
	SEG_NEW,           /* 新規顧客: first and only purchase days recent */
	SEG_PROMISING,     /* recent, a few purchases */
	SEG_NEEDS_ATTENTION, /* middling recency, few purchases */
	SEG_AT_RISK,       /* used to buy often, gone quiet */
	SEG_DORMANT,       /* 休眠顧客: quiet for a long while */
	SEG_LOST,          /* 離反顧客: the longest gone, few purchases */
	SEG_PROSPECT,      /* known, but no purchase yet */
	SEG_COUNT
};

const char *segment_name(enum segment s);
/* Returns the segment named s[0..n), or -1. */
int segment_parse(const char *s, size_t n);

/* One customer's figures. */
typedef struct rfm_figures {
	int64_t first_purchase; /* Unix seconds; valid when frequency > 0 */
	int64_t last_purchase;
	uint32_t frequency;     /* distinct purchase days */
	float monetary;         /* net spend */
} rfm_figures;

/* Quintile cut points: score = 1 + number of cuts the value is beyond
 * (recency: below, as fewer days is better). */
typedef struct rfm_cuts {
	float recency_days[4];
	float frequency[4];
	float monetary[4];
} rfm_cuts;

typedef struct rfm_scores {
	uint8_t r, f, m; /* 1..5, 0 when the customer never bought */
} rfm_scores;

/* Figures for every customer of ds (out has idmap_count(ds->customers)
 * entries; the caller allocates). */
void rfm_compute(const struct dataset *ds, rfm_figures *out);

/* Quintile cuts over the customers with a purchase, recency measured at
 * as_of. All-zero cuts when nobody bought. */
void rfm_cut_points(const rfm_figures *figs, uint32_t n, int64_t as_of, rfm_cuts *cuts);

/* Scores a customer at time `now`. */
rfm_scores rfm_score(const rfm_cuts *cuts, const rfm_figures *f, int64_t now);

/* The segment of a scored customer (README.md "Segments" has the rules). */
enum segment rfm_segment(rfm_scores s);

#endif
