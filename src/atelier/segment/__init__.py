"""Phase 2, segmentation: behavioural cohorts with K-Means, checked every way we can, named by visible rules.

settings   SegmentSettings (params.yaml `segmentation`) and the features the data has
cluster    the segmenter (fill -> log1p -> scale -> K-Means), the k sweep, raw against log features
quality    silhouette, Davies-Bouldin and sizes read together: the trap, the sweep's reading
density    DBSCAN and HDBSCAN: does the data have natural clusters?
stability  bootstrap refits: do the segments survive resampling?
agreement  segments against the simulator's hidden personas (simulated data only)
profile    profiles in original units, centroids in SDs, descriptive columns
naming     names earned by rules that hold in relative and absolute terms; fallback names in words
recluster  matching a refit's clusters to last period's, so names stay
embed      PCA and t-SNE pictures; sample: seeded row samples
summary    the report's closing answers, from the metrics
stage      every file the phase reads or writes, and the metrics dict
"""
