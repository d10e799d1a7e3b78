"""Speech out: SpeechManager (priorities, stop, long answers), SentenceChunker, drivers, earcons.

Qt-free. Import the pieces from their modules; this package imports nothing heavy.
"""
