"""The real-music catalog: public-domain scores arranged per track and rendered to audio."""
