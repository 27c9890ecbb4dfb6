public let ringmasterVersion = "0.1.0"
