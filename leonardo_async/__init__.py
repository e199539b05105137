"""Asyncio-native client for Leonardo.AI image-to-video (Veo 3.1)."""
