"""The exception desk: failed or held runs become cases that are grouped, routed, timed and worked."""
