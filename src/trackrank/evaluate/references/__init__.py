"""Reference rows that need no ranking training: MFCC statistics, the tagger's trunk, the untrained network."""
